"""MkDocs hook: every page under docs/ appears in the navigation, listed in mkdocs.yml or not.

mkdocs.yml names the pages in a chosen order. A page it leaves out (someone added
``docs/guide/faults.md`` and did not touch mkdocs.yml) is appended, at build time, to the section
of its folder (``guide/`` -> "Guides", ``results/`` -> "Results", ...; pages of another folder go
to a section named after the folder, top-level pages to "More"), sorted by path. So a new page is
never orphaned and never breaks ``mkdocs build --strict``.

It also writes each command's ``--help`` into the page that asks for it with
``<!-- analogdecor-help: COMMAND [ACTION] -->``, so the command pages cannot fall behind the parser,
warns (so ``--strict`` fails) when a class or function that an API page documents
(``::: module``, every name in the module's ``__all__``) has no docstring, and turns the pages' TeX
(``$...$``, ``$$...$$`` via pymdownx.arithmatex) into MathML at build time with latex2mathml, so
equations show in any current browser without fetching a script (the site works offline).
"""

from __future__ import annotations

import argparse
import html
import importlib
import inspect
import logging
import os
import re
from typing import Any

SECTIONS = {
    "concepts": "Concepts",
    "commands": "Commands",
    "guide": "Guides",
    "results": "Results",
    "reference": "API reference",
}


def _listed(nav: Any) -> set[str]:
    """Every page path named in a (nested) nav list."""
    out: set[str] = set()
    if isinstance(nav, str):
        out.add(nav)
    elif isinstance(nav, list):
        for item in nav:
            out |= _listed(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            out |= _listed(value)
    return out


def _section(nav: list[Any], title: str) -> list[Any]:
    """The item list of the top-level section ``title`` (created before the last entry if missing)."""
    for item in nav:
        if isinstance(item, dict) and title in item and isinstance(item[title], list):
            return item[title]
    new: list[Any] = []
    nav.insert(max(len(nav) - 1, 0), {title: new})
    return new


def on_files(files: Any, config: Any) -> Any:
    nav = config["nav"]
    if not nav:
        return files  # no nav at all: MkDocs lists every page itself
    listed = _listed(nav)
    missing = sorted(f.src_uri for f in files.documentation_pages() if f.src_uri not in listed)
    for path in missing:
        folder = path.split("/")[0] if "/" in path else ""
        title = SECTIONS.get(folder, folder.replace("-", " ").replace("_", " ").capitalize() or "More")
        _section(nav, title).append(path)
    return files


# ------------------------------------------------------------------ command help in the pages
HELP_MARKER = re.compile(r"<!-- analogdecor-help: ([a-z ]+?) -->")


def _cli_help(words: list[str]) -> str:
    """``analogdecor WORDS --help`` as the installed parser prints it (84 columns, the width of a page)."""
    os.environ["COLUMNS"] = "84"
    from analogdecor.cli import build_parser

    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser.format_help()


# ------------------------------------------------------------------ docstrings of the API pages
LOG = logging.getLogger("mkdocs.hooks.analogdecor")
API_MARKER = re.compile(r"^::: ([\w.]+)", re.M)


def _undocumented(module_name: str) -> list[str]:
    """Classes and functions in ``module_name.__all__`` without a docstring (none if it cannot be imported)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # an optional extra is missing: mkdocstrings still renders it from the source
        return []
    missing = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name, None)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
            missing.append(f"{module_name}.{name}")
    return missing


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace ``<!-- analogdecor-help: bench crossbar -->`` by that command's --help, as text; warn
    about undocumented public classes and functions of the modules the page documents."""
    for module_name in API_MARKER.findall(markdown):
        for name in _undocumented(module_name):
            LOG.warning("%s: %s has no docstring", page.file.src_uri, name)
    return HELP_MARKER.sub(lambda m: f"```text\n{_cli_help(m.group(1).split())}```", markdown)


# ------------------------------------------------------------------ equations: TeX -> MathML at build time
MATH = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)


def _mathml(match: re.Match[str], where: str) -> str:
    from latex2mathml.converter import convert

    tag, tex = match.group(1), html.unescape(match.group(2)).strip()
    if tex[:2] in ("\\(", "\\["):
        tex = tex[2:-2]
    tex = tex.replace("\\_", "_")  # \text{dw\_min}: the underscore escape is for Markdown, not for MathML
    try:
        out = convert(tex, display="block" if tag == "div" else "inline")
    except Exception as exc:  # latex2mathml raises its own exception types
        LOG.warning("%s: cannot convert the equation %r: %s", where, tex, exc)
        return match.group(0)
    leftover = re.findall(r"\\[A-Za-z]+", out)
    if leftover:
        LOG.warning("%s: the equation %r has commands MathML lacks: %s", where, tex, sorted(set(leftover)))
    return out if tag == "span" else f'<div class="arithmatex">{out}</div>'


def on_page_content(content: str, page: Any, config: Any, files: Any) -> str:
    """Every equation of the page as MathML (rendered by the browser itself)."""
    return MATH.sub(lambda m: _mathml(m, page.file.src_uri), content)
