"""Runs, servers and clients shared by the review tests (test_review.py, test_review_browser.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from limitlab.analysis.detect import detect
from limitlab.config import Config
from limitlab.train import train

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def digits_run(root: Path, **changes) -> Path:
    """A small LIMIT run on digits with 30% uniform noise, detected (label_errors.csv written)."""
    options = dict(dataset="digits", noise="uniform:0.3", train_size=400, epochs=3, batch_size=64,
                   method="limit-l", device="cpu")
    options.update(changes)
    out = root / "digits"
    train(Config(**options), out, progress=False)
    detect(out, progress=False)
    return out


def table_frame(n: int = 240, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    species = rng.choice(["setosa", "versicolor", "virginica"], size=n)
    k = np.searchsorted(["setosa", "versicolor", "virginica"], species)
    flipped = rng.random(n) < 0.25  # wrong labels: the next species
    given = np.where(flipped, np.array(["setosa", "versicolor", "virginica"])[(k + 1) % 3], species)
    return pd.DataFrame({"length": k * 3.0 + rng.normal(size=n), "width": 100 + 20 * k + rng.normal(size=n) * 5,
                         "colour": np.where(rng.random(n) < 0.7, np.array(["red", "green", "blue"])[k], "red"),
                         "species": given})


def table_run(root: Path) -> tuple[Path, Path]:
    """(run, its input CSV): a run on a table with 25% flipped labels, detected."""
    path = root / "flowers.csv"
    table_frame().to_csv(path, index=False)
    out = root / "flowers"
    train(Config(dataset=f"table:{path}", label_column="species", epochs=4, batch_size=32, method="limit-l",
                 device="cpu"), out, progress=False)
    detect(out, progress=False)
    return out, path


def serve(run: Path):
    """A review server over ``run`` in a thread (stop it with .stop())."""
    from limitlab.review.serve import Server
    from limitlab.review.server import Review
    from limitlab.review.source import from_run
    from limitlab.review.state import Decisions

    review = Review(from_run(run, progress=False), Decisions(run / "review" / "decisions.jsonl"))
    server = Server(review, port=0).start()
    server.review = review
    return server


def decisions(run: Path) -> list[dict]:
    path = run / "review" / "decisions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def chromium_or_skip():
    """The path of Debian's Chromium; skip when it is missing, fail instead in CI (LIMITLAB_REQUIRE_BROWSER=1)."""
    import pytest

    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("LIMITLAB_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (required because LIMITLAB_REQUIRE_BROWSER=1): apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); the browser tests need it")
    return path
