"""Shared fixtures.

``data_root``: the folder holding the real datasets (``mnist/`` with the four IDX files):
$LIMITLAB_DATA if set, else ``<repo>/../shared/data``. A test that asks for it skips, saying why,
when MNIST is not there, unless LIMITLAB_REQUIRE_DATA=1 (as in CI), where it fails instead.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def find_data_root() -> tuple[Path, str | None]:
    """(data root, None) if it holds MNIST, else (where we looked, why it is unusable)."""
    root = Path(os.environ.get("LIMITLAB_DATA") or REPO.parent / "shared" / "data").expanduser().resolve()
    missing = [f for f in MNIST_FILES
               if not (root / "mnist" / f).is_file() and not (root / "mnist" / f"{f}.gz").is_file()]
    if missing:
        return root, (f"MNIST not found in {root / 'mnist'} (missing {', '.join(missing)}[.gz]); "
                      f"set LIMITLAB_DATA to a folder with mnist/ in it")
    return root, None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root (a Path whose ``mnist/`` holds the IDX files); skip or fail if absent."""
    root, problem = find_data_root()
    if problem:
        if os.environ.get("LIMITLAB_REQUIRE_DATA") == "1":
            pytest.fail(f"{problem} (required because LIMITLAB_REQUIRE_DATA=1)")
        pytest.skip(problem)
    return root


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` imported as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
