"""The README's and the home page's demo table is what `limitlab demo` prints, and the picture they show
is the one the demo draws. The demo runs once (two runs of 40 epochs on the bundled digits, CPU,
deterministic for its seed) and the tests share it.

After a change that moves the demo's numbers: `python tests/test_docs_demo.py` runs the demo and
rewrites the table in README.md and docs/index.md and the picture docs/images/demo.png (then update
the numbers quoted in the text around them).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "docs" / "index.md"]
PICTURE = REPO / "docs" / "images" / "demo.png"
HEADER = re.compile(r"^ *method +test acc")


def run_demo(out: Path) -> subprocess.CompletedProcess:
    """`limitlab demo` as a user runs it (a fresh process, this source tree), into ``out``. With two
    threads allowed: the demo runs on one thread, so that its numbers are the same on every machine."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "limitlab", "demo", "--quiet", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=900)


def printed_table(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if HEADER.match(line))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("run directories:"))
    return lines[start:end]


def page_table(page: Path) -> tuple[int, int]:
    """(first, last + 1) line numbers of the demo table in the page's output block."""
    lines = page.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if HEADER.match(line)]
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    return start, end


def write_pages(table: list[str], picture: Path | None) -> None:
    for page in PAGES:
        lines = page.read_text().splitlines()
        start, end = page_table(page)
        page.write_text("\n".join(lines[:start] + table + lines[end:]) + "\n")
    if picture is not None:
        PICTURE.parent.mkdir(exist_ok=True)
        shutil.copyfile(picture, PICTURE)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        result = run_demo(Path(folder) / "demo")
        sys.stderr.write(result.stderr)
        if result.returncode:
            sys.exit(result.returncode)
        table = printed_table(result.stdout)
        png = Path(folder) / "demo" / "demo.png"
        write_pages(table, png if png.exists() else None)
        print("\n".join(table))
        print(f"rewrote the table in {', '.join(str(p.relative_to(REPO)) for p in PAGES)}"
              + (f" and {PICTURE.relative_to(REPO)}" if png.exists() else " (no picture: matplotlib is missing)")
              + "; now check the numbers quoted in the text")
    sys.exit(0)


import pytest  # noqa: E402  (the script above runs without pytest)

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (pip install 'limitlab[plots]')")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "runs"
    result = run_demo(out)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stdout


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_shows_the_table_the_demo_prints(demo, page):
    _, stdout = demo
    start, end = page_table(page)
    shown = page.read_text().splitlines()[start:end]
    assert shown == printed_table(stdout), (
        f"{page.relative_to(REPO)} does not show what `limitlab demo` prints now; run "
        f"`python tests/test_docs_demo.py` to rewrite it, then check the numbers quoted in the text:\n"
        + "\n".join(printed_table(stdout)))


@needs_matplotlib
def test_demo_draws_the_curves_the_pages_show(demo):
    out, stdout = demo
    png = out / "demo.png"
    assert f"curves: {png}" in stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = (out / "demo.csv").read_text().splitlines()
    # one row per run and epoch, and a test accuracy at every epoch (the test curve)
    assert len(csv) == 1 + 2 * 40
    column = csv[0].split(",").index("test_accuracy")
    assert all(row.split(",")[column] for row in csv[1:])
    assert PICTURE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](docs/images/demo.png)" in PAGES[0].read_text()
    assert "](images/demo.png)" in PAGES[1].read_text()


def test_demo_without_matplotlib_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from limitlab.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(tmp_path / "runs")]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "no picture: matplotlib is not installed (pip install 'limitlab[plots]')"
    assert not (tmp_path / "runs" / "demo.png").exists()
    assert (tmp_path / "runs" / "limit-l" / "summary.json").is_file()
