"""``analogdecor devices list`` / ``show NAME`` / ``fit MEASUREMENTS.csv``: the device preset registry."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("devices", help="list and show device presets (device_models/)",
                                   description="Device presets: TOML files in device_models/ with their sources.")  # fmt: skip
    sub = parser.add_subparsers(dest="devices_command", metavar="ACTION")
    p_list = sub.add_parser("list", help="list the presets")
    p_list.set_defaults(func=_list)
    p_show = sub.add_parser("show", help="show one preset: source, every parameter, its meaning")
    p_show.add_argument("name", help="preset name (case-insensitive), e.g. ReRamES")
    p_show.add_argument("--toml", action="store_true", help="print the preset file as it is")
    p_show.set_defaults(func=_show)
    p_fit = sub.add_parser(
        "fit", help="fit a preset to measured pulse responses (CSV)",
        description="Fit a device family to measured conductance-vs-pulse data and write a preset TOML and a "
                    "PNG fit report. CSV columns: device, cycle, pulse, polarity (up/down), conductance_uS; "
                    "see docs/guide/fit-device.md.")  # fmt: skip
    p_fit.add_argument("measurements", help="the measurement CSV")
    p_fit.add_argument("--model", default="auto",
                       choices=("auto", "constant", "linear", "softbounds", "exp", "pow", "piecewise"),
                       help="device family to fit (auto: lowest BIC among those that fit)")  # fmt: skip
    p_fit.add_argument("--out", required=True, help="preset file to write, e.g. device_models/MyDevice.toml")
    p_fit.add_argument("--report", default=None, help="PNG fit report (default: OUT with .png)")
    p_fit.add_argument("--g-min", type=float, default=0.0, help="lowest conductance of the mapping, uS (0)")
    p_fit.add_argument("--g-max", type=float, default=25.0, help="highest conductance of the mapping, uS (25)")
    p_fit.add_argument("--w-scale", type=float, default=1.0,
                       help="weight that g_max maps onto (g_min maps onto -w_scale; default 1)")  # fmt: skip
    p_fit.add_argument("--nodes", type=int, default=9, help="nodes of the piecewise table (9)")
    p_fit.add_argument("--base", default=None,
                       help="preset whose periphery and update settings the fitted preset takes (default: "
                            "analogdecor's defaults)")  # fmt: skip
    p_fit.set_defaults(func=_fit)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    from analogdecor.devices.registry import list_presets, preset_dir, preset_info

    rows = [(p.name, p.config.device.model, p.source.summary, p.source.citation)
            for p in map(preset_info, list_presets())]  # fmt: skip
    widths = [max(len(r[k]) for r in [("name", "model", "", ""), *rows]) for k in range(2)]
    print(f"presets in {preset_dir()}:")
    print(f"{'name':<{widths[0]}}  {'model':<{widths[1]}}  summary  [citation]")
    for name, model, summary, citation in rows:
        print(f"{name:<{widths[0]}}  {model:<{widths[1]}}  {summary}  [{citation}]")
    return 0


def _show(args: argparse.Namespace) -> int:
    import dataclasses

    from analogdecor.devices.registry import field_docs, preset_info

    preset = preset_info(args.name)
    if args.toml:
        print(preset.path.read_text(), end="")
        return 0
    src = preset.source
    print(f"{preset.name}: {src.summary}")
    print(f"  file:     {preset.path}")
    print(f"  citation: {src.citation}")
    if src.url:
        print(f"  url:      {src.url}")
    if src.fit:
        print(f"  fit:      {src.fit}")
    if src.notes:
        print(f"  notes:    {src.notes}")
    cfg = preset.config
    for section in ("device", "forward", "backward", "update", "mapping"):
        obj = getattr(cfg, section)
        docs = field_docs(type(obj))  # type: ignore[arg-type]  # lru_cache wants Hashable
        print(f"\n[{section}]")
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            print(f"  {f.name} = {value!r}")
            if f.name in docs:
                print(f"      {docs[f.name]}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from analogdecor.devices.fit_report import fit_measurements, format_table
    from analogdecor.devices.registry import load_preset

    base = load_preset(args.base) if args.base else None
    report = Path(args.report) if args.report else Path(args.out).with_suffix(".png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen, results, _ = fit_measurements(
            args.measurements, args.model, out=args.out, report=report, g_min=args.g_min, g_max=args.g_max,
            w_scale=args.w_scale, nodes=args.nodes, base=base,
        )  # fmt: skip
    print(format_table(results, chosen.family))
    for w in caught:
        print(f"warning: {w.message}")
    how = "lowest BIC" if args.model == "auto" else "requested"
    print(f"\nfamily {chosen.family!r} ({how}) -> {args.out}\nreport -> {report}")
    return 0
