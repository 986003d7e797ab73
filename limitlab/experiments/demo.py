"""``limitlab demo``: cross-entropy against LIMIT_L on the embedded 8×8 digits with synthetic label
noise, the README's table and picture. Deterministic for a seed on CPU, on one thread whatever the
machine (tests/test_docs_demo.py checks that the README shows what it prints)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from ..config import Config
from ..runtime import pinned_threads
from ..train import train

METHODS = ("ce", "limit-l")


def demo_configs(noise: str = "uniform:0.6", epochs: int = 40, beta: float = 10.0, seed: int = 0) -> dict[str, Config]:
    """The demo's two runs by method: no early stopping (CE's memorization is the point) and a test pass
    every epoch (the picture's test-accuracy curves)."""
    return {method: Config(dataset="digits", noise=noise, method=method, epochs=epochs, patience=None, seed=seed,
                           batch_size=128, test_every=1, **({"beta": beta} if method != "ce" else {}))
            for method in METHODS}


def run_demo(out: str | Path, configs: dict[str, Config], progress: bool = True) -> tuple[list[dict], dict[str, Path]]:
    """Train each config into ``out/<method>``, replacing an earlier demo run there, with one thread
    (the README's table holds on any machine: other thread counts change the last bits, and with them
    the numbers). Returns the summaries (with ``method``) and the run directories, by method."""
    rows, runs = [], {}
    with pinned_threads(1):  # the same numbers on every machine (the thread count changes them); fast on this data
        for method, config in configs.items():
            print(f"training {method} on {config.dataset} with {config.noise} label noise ({config.epochs} epochs) ...",
                  file=sys.stderr)
            runs[method] = Path(out) / method
            rows.append(train(config, runs[method], overwrite=True, progress=progress))
    return rows, runs


def picture_problem() -> str | None:
    """Why the demo cannot draw its curves (matplotlib, the ``plots`` extra, is missing), or None."""
    if importlib.util.find_spec("matplotlib") is None:
        return "no picture: matplotlib is not installed (pip install 'limitlab[plots]')"
    return None
