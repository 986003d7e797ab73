"""The documentation site builds strictly (no broken link or anchor, no public object without a
docstring), its CLI reference lists every command and flag, and the README's links resolve."""

import argparse
import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from limitlab.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs/mkdocstrings are not installed (pip install 'limitlab[docs]'; the dev extra has them)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # a banner of the theme, not a problem of ours
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(REPO / "mkdocs.yml"), "--site-dir", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


@needs_mkdocs
def test_site_builds_strictly_with_every_page(site):
    for page in ["index.html", "method/index.html", "your-data/index.html", "your-loop/index.html",
                 "reproducing/index.html", "detection/index.html", "gpus/index.html", "extending/index.html",
                 "getting-started/index.html", "cli/index.html", "api/index.html", "changelog/index.html",
                 "benchmarks/RESULTS/index.html"]:
        assert (site / page).is_file(), page
    # figures are served from benchmarks/results/
    assert (site / "benchmarks/results/mnist1000-ext/accuracy_vs_noise.png").is_file()


@needs_mkdocs
def test_method_page_has_the_nine_sections_in_order(site):
    text = (REPO / "docs" / "method.md").read_text()
    numbers = [int(n) for n in re.findall(r"^## §(\d) ", text, flags=re.M)]
    assert numbers == list(range(1, 10))


@needs_mkdocs
def test_cli_reference_lists_every_command_and_flag(site):
    text = _text(site / "cli" / "index.html")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sub.choices
    for name, command in sub.choices.items():
        assert f"limitlab {name}" in text
        for action in command._actions:
            for flag in action.option_strings:
                assert flag in text, f"{flag} of limitlab {name} is missing from the CLI reference"
            if action.help and action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                first_words = " ".join(action.help.split()[:4]).replace("%%", "%")
                assert first_words in text, f"help of {action.dest} ({name}) is missing"


@needs_mkdocs
def test_api_reference_has_a_page_per_module(site):
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(REPO / "docs"))
    modules = hooks.api_modules()
    assert "limitlab.limit" in modules and "limitlab.losses" in modules and "limitlab.cli" not in modules
    for name in modules[1:]:
        page = site / "api" / name.removeprefix("limitlab.") / "index.html"
        assert page.is_file(), name
    assert "limit_loss" in _text(site / "api" / "limit" / "index.html")
    assert hooks.missing_docstrings() == []


def test_readme_links_resolve():
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://|#|mailto:", t)]
    assert local, "the README links to no local file"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
