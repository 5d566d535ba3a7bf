"""``analogdecor devices list`` / ``analogdecor devices show NAME``: the device preset registry."""

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
