"""MkDocs hooks that generate the reference pages, so they cannot drift from the code.

- ``cli.md``: every subcommand and flag, read from ``limitlab.cli.build_parser()``.
- ``api/<module>.md``: one page per public module of the package (found by walking it), each a
  mkdocstrings ``::: limitlab.<module>`` block; the nav's "Python API" entry lists them.
- A public module, class or function without a docstring is a warning, so ``mkdocs build
  --strict`` fails on it.
- ``benchmarks/RESULTS.md`` with its figures, and ``CHANGELOG.md``, are served from where they
  live in the repository (one copy of each).
- Sphinx roles in docstrings (``:func:`x```) are shown as plain code.
"""

from __future__ import annotations

import argparse
import logging
import os
import pkgutil
import re
from pathlib import Path

from mkdocs.structure.files import File, Files, InclusionLevel

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "limitlab"
# Not in the API reference: the command (it has its own page) and the ``python -m`` entry point.
SKIP_MODULES = {"limitlab.cli", "limitlab.__main__"}
API_NAV_TITLE = "Python API"
log = logging.getLogger("mkdocs.plugins.limitlab")


# ----------------------------------------------------------------------------------------------
# The Python API pages
# ----------------------------------------------------------------------------------------------

def api_modules() -> list[str]:
    """Every public module of the package, packages before their submodules, in name order."""
    names = [PACKAGE]
    for info in pkgutil.walk_packages([str(REPO / PACKAGE)], prefix=f"{PACKAGE}."):
        if not any(part.startswith("_") for part in info.name.split(".")) and info.name not in SKIP_MODULES:
            names.append(info.name)
    return sorted(names, key=lambda n: n.split("."))


def _api_uri(module: str) -> str:
    return "api/index.md" if module == PACKAGE else f"api/{module.removeprefix(PACKAGE + '.')}.md"


def _api_page(module: str) -> str:
    if module == PACKAGE:
        lines = ["# Python API", "",
                 "Generated from the docstrings. `import limitlab` stays light: it brings the method "
                 "(`limit_loss`, `LIMIT`) and loads the rest on first use.", "",
                 f"::: {PACKAGE}", "    options:", "      members: false", "      show_root_heading: false", "",
                 "## Modules", ""]
        for name in api_modules()[1:]:
            lines.append(f"- [`{name}`]({_api_uri(name).removeprefix('api/')})")
        return "\n".join(lines) + "\n"
    return f"# `{module}`\n\n::: {module}\n    options:\n      show_root_heading: false\n      show_submodules: false\n"


# ----------------------------------------------------------------------------------------------
# The CLI page
# ----------------------------------------------------------------------------------------------

def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            names = ", ".join(action.option_strings)
            if action.nargs != 0:
                names += " " + formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        else:
            names = formatter._format_args(action, formatter._get_default_metavar_for_positional(action))
        text = formatter._expand_help(action) if action.help else ""
        if action.choices and not isinstance(action, argparse._SubParsersAction) and "choose" not in text:
            text += f" (choices: {', '.join(map(str, action.choices))})"
        rows.append(f"| `{_escape(names)}` | {_escape(text)} |")
    return rows


def _settings_rows() -> list[str]:
    """Every run setting (a ``limitlab.Config`` field) with its flag, default, part of sweep run
    names and whether ``LimitClassifier(method_options=...)`` takes it: all from the field's one
    declaration (``limitlab.config.setting``)."""
    from limitlab.config import field_infos
    from limitlab.estimator_params import OWN

    rows = ["## Run settings", "",
            "Each `limitlab train` flag is a field of `limitlab.Config` (a run's `config.json`, a sweep grid's "
            "keys). In sweep run names a field shows as its short name and value (e.g. `wd0.0001`); "
            "`LimitClassifier(method_options={...})` takes the fields marked *estimator* (the others are "
            "the data's, or parameters of the estimator itself).", "",
            "| field | flag | default | run-name part | estimator |", "|---|---|---|---|---|"]
    for info in field_infos():
        estimator = "parameter" if info.name in OWN else ("method_options" if info.estimator else "-")
        rows.append(f"| `{info.name}` | `{info.flag}` | `{info.default!r}` | {f'`{info.short}`' if info.short else '-'} "
                    f"| {estimator} |")
    return rows + [""]


def cli_page() -> str:
    """The CLI reference in Markdown, from the argparse parsers."""
    from limitlab.cli import build_parser

    old_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "78"  # usage lines that fit the page without scrolling
    try:
        parser = build_parser()
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        helps = {choice.dest: choice.help for choice in sub._choices_actions}
        lines = ["# Command line", "",
                 "Generated from the parsers of `limitlab` (`limitlab.cli.build_parser()`) when the site is "
                 "built; `limitlab COMMAND --help` prints the same.", "",
                 "```text", parser.format_usage().strip(), "```", "",
                 "| command | what it does |", "|---|---|"]
        lines += [f"| [`{name}`](#limitlab-{name}) | {_escape(helps.get(name) or '')} |" for name in sub.choices]
        lines += ["", "| option | meaning |", "|---|---|", *_option_rows(parser), ""]
        for name, p in sub.choices.items():
            lines += [f"## limitlab {name}", ""]  # anchor: #limitlab-{name}
            if p.description:
                lines += [_escape(p.description % {"prog": p.prog}), ""]
            lines += ["```text", p.format_usage().strip(), "```", "",
                      "| option | meaning |", "|---|---|", *_option_rows(p), ""]
            if p.epilog:
                lines += [f"*{p.epilog.split(':', 1)[0]}:*", "", "```bash",
                          p.epilog.split(":", 1)[1].strip(), "```", ""]
        return "\n".join(lines + _settings_rows())
    finally:
        if old_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old_columns


# ----------------------------------------------------------------------------------------------
# Missing docstrings
# ----------------------------------------------------------------------------------------------

def missing_docstrings() -> list[str]:
    """Public modules, and public classes and functions defined in them, that have no docstring."""
    import griffe

    package = griffe.load(PACKAGE, search_paths=[str(REPO)], docstring_parser="numpy")
    missing = []
    for name in api_modules():
        module = package if name == PACKAGE else package[name.removeprefix(PACKAGE + ".")]
        if not module.docstring:
            missing.append(name)
        for member_name, member in module.members.items():
            if member_name.startswith("_") or member.is_alias:
                continue
            if (member.is_class or member.is_function) and not member.docstring:
                missing.append(member.path)
    return missing


# ----------------------------------------------------------------------------------------------
# Hooks
# ----------------------------------------------------------------------------------------------

def on_config(config, **kwargs):
    """Fill the nav's "Python API" entry with one page per module."""
    def expand(items):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                (title, value), = item.items()
                if title == API_NAV_TITLE:
                    items[i] = {title: [{"Overview": "api/index.md"}] +
                                [{name: _api_uri(name)} for name in api_modules()[1:]]}
                elif isinstance(value, list):
                    expand(value)
    expand(config.nav or [])
    return config


def on_files(files: Files, config, **kwargs) -> Files:
    """Add the generated pages and the repository files the site shows."""
    files.append(File.generated(config, "cli.md", content=cli_page()))
    for name in api_modules():
        files.append(File.generated(config, _api_uri(name), content=_api_page(name)))
    files.append(File.generated(config, "changelog.md", abs_src_path=str(REPO / "CHANGELOG.md")))
    files.append(File.generated(config, "benchmarks/RESULTS.md", abs_src_path=str(REPO / "benchmarks" / "RESULTS.md")))
    for path in sorted((REPO / "benchmarks" / "results").rglob("*")):
        if path.is_file():
            # Pages among them (tables written by benchmarks) are linked from RESULTS.md, not the nav.
            files.append(File.generated(config, path.relative_to(REPO).as_posix(), abs_src_path=str(path),
                                        inclusion=InclusionLevel.NOT_IN_NAV))
    return files


# Sphinx roles in docstrings (":func:`x`") have no meaning here: keep the code, drop the role.
_SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):(<code>)")


def on_page_content(html: str, page, config, files) -> str:
    """Drop Sphinx role prefixes that docstrings may carry."""
    return _SPHINX_ROLE.sub(r"\1", html)


def on_pre_build(config, **kwargs):
    """Warn (an error under --strict) for every public object without a docstring."""
    for path in missing_docstrings():
        log.warning(f"{path} has no docstring; the API reference needs one")
