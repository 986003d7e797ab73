"""Every code block of README.md and docs/*.md runs, page by page, as a reader would copy them.

The convention (also in docs/extending.md, "Conventions"):

- A page's blocks run in page order, in a fresh temporary folder per page. ```python blocks of a
  page share one namespace (one script, run in order); ```bash / ```sh / ```shell blocks run
  with `bash -e`, the Python environment's `bin/` first on PATH, LIMITLAB_DATA set and one thread
  (OMP_NUM_THREADS=1); in a ```console block the lines starting with `$ ` run and the others are
  the expected output (not compared).
- Output and data blocks do not run: a fence without a language, ```text, ```json (which must
  parse), ```yaml, ```toml, ```csv.
- A block that needs a GPU, a download, a cluster or more than a few seconds is marked on the line
  right before its fence, with the reason, and is skipped (the test reports the reasons):

      <!-- docs-test: skip (needs a GPU) -->
      ```bash
      torchrun --nproc-per-node 4 -m limitlab train ...
      ```

  Prefer making the example small enough to run (fewer epochs, `--train-size`) and saying so in
  the text; skip only what cannot be made small.
- An output block marked `<!-- docs-test: output -->` on the line before its fence must be exactly
  what the block right before it prints (stdout; runs are deterministic on CPU for a seed), so the
  numbers a page shows and discusses are the ones its command gives.
- Every fence must be closed: a page with an unclosed fence (which renders the rest of the page as
  code) fails, as does a line inside a block that starts with ``` followed by text.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash", "console": "console"}
NOT_RUN = {"", "text", "json", "yaml", "toml", "csv", "output"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
OUTPUT = "<output>"  # (a pending marker's kind)
MARKER = re.compile(r"^ {0,3}<!--\s*docs-test:\s*(?P<what>[\w-]+)\s*(?:\((?P<reason>.*)\))?\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int            # 1-based line of the opening fence
    language: str
    code: str
    skip: str | None     # the reason, for a block marked skip
    expected: str | None = None  # for a runnable block: the output block marked `output` right after it


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def parse(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page (CommonMark fences); raises ValueError on a broken fence
    or a marker that is not right before a fence."""
    lines = path.read_text().splitlines()
    name = str(path.relative_to(REPO))
    blocks, i, pending = [], 0, None
    while i < len(lines):
        line = lines[i]
        marker = MARKER.match(line)
        if marker:
            if marker["what"] == "output" and marker["reason"] is None:
                pending = (i, OUTPUT)
            elif marker["what"] == "skip" and (marker["reason"] or "").strip():
                pending = (i, marker["reason"].strip())
            else:
                raise ValueError(f"{name}:{i + 1}: a marker is '<!-- docs-test: skip (the reason) -->' or "
                                 f"'<!-- docs-test: output -->', not {line.strip()!r}")
            i += 1
            continue
        opening = FENCE.match(line)
        if not opening:
            if pending and line.strip():
                raise ValueError(f"{name}:{pending[0] + 1}: a docs-test marker must be on the line right before a fence")
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        language = info.split()[0].lower() if info else ""
        body, j = [], i + 1
        while j < len(lines):
            closing = re.match(r"^ {0,3}(`{3,}|~{3,})\s*$", lines[j])
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= len(fence):
                break
            if re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*[^\s{re.escape(fence[0])}]", lines[j]):
                raise ValueError(f"{name}:{j + 1}: a fence with text after it inside the block opened at line "
                                 f"{i + 1} (a closing fence stands alone on its line): {lines[j].strip()[:60]!r}")
            body.append(lines[j])
            j += 1
        else:
            raise ValueError(f"{name}:{i + 1}: the code fence opened here is never closed")
        indent = len(opening["indent"])
        code = "\n".join(b[indent:] if b[:indent].isspace() else b for b in body) + "\n"
        if language not in RUN and language not in NOT_RUN:
            raise ValueError(f"{name}:{i + 1}: unknown block language {language!r}: use one of "
                             f"{sorted(RUN)} (runs) or {sorted(NOT_RUN - {''})} / none (not run)")
        if pending and pending[1] is OUTPUT:
            if language in RUN or not blocks or blocks[-1].language not in RUN or blocks[-1].skip:
                raise ValueError(f"{name}:{pending[0] + 1}: an output marker goes before an output block "
                                 f"(no language, or text) that follows a block that runs")
            blocks[-1].expected = code
            blocks.append(Block(name, i + 1, language, code, None))
        else:
            blocks.append(Block(name, i + 1, language, code, pending[1] if pending else None))
        pending, i = None, j + 1
    if pending:
        raise ValueError(f"{name}:{pending[0] + 1}: a docs-test marker must be on the line right before a fence")
    return blocks


def _run_page(blocks_file: str) -> int:
    """Driver, run in a fresh process in the page's folder: each block in order; the first failure
    prints where it is and stops."""
    namespace = {"__name__": "__main__"}
    for b in json.loads(Path(blocks_file).read_text()):
        where = f"{b['page']}:{b['line']} ({b['language']} block)"
        print(f"--- {where}", flush=True)
        if b["language"] in ("bash", "console"):
            code = b["code"]
            if b["language"] == "console":
                code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ "))
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], stdout=subprocess.PIPE, text=True)
            printed = result.stdout
            print(printed, end="", flush=True)
            if result.returncode:
                print(f"FAILED {where}: exit code {result.returncode}\n{code}", flush=True)
                return 1
        else:
            buffer = io.StringIO()
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(b["code"], where, "exec"), namespace)
            except BaseException as e:  # noqa: BLE001  (reported with the block, then the test fails)
                import traceback

                print(buffer.getvalue())
                traceback.print_exc()
                print(f"FAILED {where}: {type(e).__name__}: {e}\n{b['code']}", flush=True)
                return 1
            printed = buffer.getvalue()
            print(printed, end="", flush=True)
        shown = [line.rstrip() for line in (b["expected"] or "").strip("\n").splitlines()]
        if b["expected"] is not None and [line.rstrip() for line in printed.strip("\n").splitlines()] != shown:
            print(f"FAILED {where}: it printed\n{printed}\nwhere the page shows (the block marked output after it)\n"
                  f"{b['expected']}", flush=True)
            return 1
    return 0


def run_page(blocks: list[Block], folder: Path) -> subprocess.CompletedProcess:
    runnable = [b for b in blocks if b.language in RUN and b.skip is None]
    (folder / ".blocks.json").write_text(json.dumps([asdict(b) for b in runnable]))
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # absolute: the pages run in a temporary folder, and CI gives a path relative to the repository
    env["LIMITLAB_DATA"] = str(Path(env.get("LIMITLAB_DATA", REPO.parent / "shared" / "data")).resolve())
    env["OMP_NUM_THREADS"] = "1"  # the outputs pages show are one thread's (the thread count changes the last bits)
    env["MPLBACKEND"] = "Agg"
    return subprocess.run([sys.executable, __file__, str(folder / ".blocks.json")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


if __name__ == "__main__":
    sys.exit(_run_page(sys.argv[1]))


import pytest  # noqa: E402  (the driver above runs without pytest)

PAGES = pages()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_page_code_blocks_run(page, tmp_path):
    blocks = parse(page)
    for b in blocks:
        if b.language == "json" and b.skip is None:
            json.loads(b.code)  # a JSON example must at least be JSON
    skipped = [f"line {b.line}: {b.skip}" for b in blocks if b.skip]
    if not any(b.language in RUN and b.skip is None for b in blocks):
        pytest.skip("no block to run" + (f" ({'; '.join(skipped)})" if skipped else ""))
    result = run_page(blocks, tmp_path)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    if skipped:  # say what did not run, in the -rA / -v output
        print("skipped blocks: " + "; ".join(skipped))


def test_every_page_is_checked():
    # the list is a glob, so a new page is run without editing this test; a page must parse
    assert (REPO / "docs" / "getting-started.md") in PAGES and (REPO / "README.md") in PAGES
    for page in PAGES:
        parse(page)


@pytest.mark.parametrize("text, problem", [
    ("```python\nx = 1\n", "never closed"),
    ("```python\nx = 1\n``` and more text\n", "fence with text after it"),
    ("<!-- docs-test: skip -->\n```bash\nls\n```\n", "a marker is"),
    ("<!-- docs-test: skip (slow) -->\n\nsome text\n```bash\nls\n```\n", "right before a fence"),
    ("```rust\nfn main() {}\n```\n", "unknown block language"),
])
def test_broken_pages_are_refused(tmp_path, monkeypatch, text, problem):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ValueError, match=problem):
        parse(page)


def test_output_marker_needs_a_block_that_runs_before_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(1)\n```\n<!-- docs-test: output -->\n```text\n1\n```\n")
    first, shown = parse(page)
    assert first.expected == "1\n" and shown.language == "text"
    page.write_text("```text\n0\n```\n<!-- docs-test: output -->\n```text\n1\n```\n")
    with pytest.raises(ValueError, match="follows a block that runs"):
        parse(page)


def test_shown_output_is_compared_with_what_the_block_prints(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(6 * 7)\n```\n<!-- docs-test: output -->\n```\n42\n```\n"
                    "```bash\necho hello\n```\n<!-- docs-test: output -->\n```text\nhello\n```\n")
    (tmp_path / "run").mkdir()
    assert run_page(parse(page), tmp_path / "run").returncode == 0
    page.write_text("```python\nprint(6 * 7)\n```\n<!-- docs-test: output -->\n```\n41\n```\n")
    result = run_page(parse(page), tmp_path / "run")
    assert result.returncode == 1 and "where the page shows" in result.stdout


def test_markers_and_languages_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("text\n\n<!-- docs-test: skip (needs a GPU) -->\n```bash\nnvidia-smi\n```\n\n"
                    "```\noutput\n```\n\n- item:\n\n  ```python\n  x = 1\n  ```\n````text\n```\n````\n")
    blocks = parse(page)
    assert [(b.line, b.language, b.skip, b.code) for b in blocks] == [
        (4, "bash", "needs a GPU", "nvidia-smi\n"), (8, "", None, "output\n"), (14, "python", None, "x = 1\n"),
        (17, "text", None, "```\n")]
