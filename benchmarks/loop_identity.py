"""Bit-identity check of the training loop: a few small `limitlab train` runs, recorded once and
compared after a change to the loop (metrics.jsonl, summary.json and every checkpoint tensor must
be exactly equal; timing fields are ignored).

    OMP_NUM_THREADS=1 python benchmarks/loop_identity.py record /tmp/before
    ... change the code ...
    OMP_NUM_THREADS=1 python benchmarks/loop_identity.py record /tmp/after
    python benchmarks/loop_identity.py compare /tmp/before /tmp/after
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

TIMING = {"seconds", "train_seconds"}
BASE = ["--dataset", "digits", "--noise", "uniform:0.5", "--train-size", "300", "--epochs", "4", "--batch-size", "64",
        "--device", "cpu", "--quiet"]
RUNS = {
    "limit-l": BASE + ["--method", "limit-l", "--beta", "3", "--warmup", "1", "--test-every", "1"],
    "limit-g-s": BASE + ["--method", "limit-g", "--sample-lambda", "2"],
    "limit-l-s": BASE + ["--method", "limit-l", "--sample-lambda", "2", "--patience", "2"],
    "ce": BASE + ["--method", "ce", "--patience", "1", "--epochs", "8"],
    "gce": BASE + ["--method", "gce", "--gce-q", "0.5", "--train-eval-every", "2"],
    "ce-gn": BASE + ["--method", "ce-gn", "--grad-noise", "laplace:0.1"],
    "table": ["--dataset", "table:{table}", "--noise", "uniform:0.3", "--epochs", "3", "--batch-size", "32",
              "--device", "cpu", "--quiet", "--method", "limit-l"],
}


def _table() -> Path:
    """The same file (and path, which config.json records) for every recording."""
    folder = Path(tempfile.gettempdir()) / "limitlab-loop-identity"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    path = folder / "t.npz"
    np.savez(path, X=x, y=y)
    return path


def record(folder: Path) -> None:
    from limitlab.cli import main
    from limitlab.config import Config
    from limitlab.train import train

    folder.mkdir(parents=True, exist_ok=True)
    table = _table()
    for name, args in RUNS.items():
        args = [a.replace("{table}", str(table)) for a in args]
        assert main(["train", *args, "--out", str(folder / name)]) == 0, name
    # a run stopped after epoch 2, then resumed by the CLI
    config = Config(dataset="digits", noise="uniform:0.5", train_size=300, epochs=4, batch_size=64, device="cpu",
                    method="limit-l", beta=3.0)

    def stop(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    try:
        train(config, folder / "resumed", progress=False, on_epoch_end=stop)
    except KeyboardInterrupt:
        pass
    assert main(["train", "--out", str(folder / "resumed"), "--resume", "--quiet"]) == 0


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING}


def _equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN == NaN here


def compare(before: Path, after: Path) -> list[str]:
    import torch

    problems = []
    for run in sorted(p.name for p in before.iterdir() if p.is_dir()):
        a, b = before / run, after / run
        rows = [[_strip(json.loads(line)) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (a, b)]
        if rows[0] != rows[1]:
            problems.append(f"{run}: metrics.jsonl differs")
        sums = [_strip(json.loads((d / "summary.json").read_text())) for d in (a, b)]
        if sums[0] != sums[1]:
            problems.append(f"{run}: summary.json differs")
        for ckpt in ("last.pt", "best.pt"):
            ta, tb = (torch.load(d / "checkpoints" / ckpt, weights_only=False) for d in (a, b))
            ta.pop("config", None), tb.pop("config", None)
            if not _equal(ta, tb):
                problems.append(f"{run}: checkpoints/{ckpt} differs")
        for f in ("config.json",):
            if (a / f).read_text() != (b / f).read_text():
                problems.append(f"{run}: {f} differs")
        na, nb = np.load(a / "noisy_labels.npz"), np.load(b / "noisy_labels.npz")
        if set(na) != set(nb) or any(not np.array_equal(na[k], nb[k]) for k in na):
            problems.append(f"{run}: noisy_labels.npz differs")
    return problems


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(Path(sys.argv[2]))
    else:
        found = compare(Path(sys.argv[2]), Path(sys.argv[3]))
        print("\n".join(found) or "identical: metrics.jsonl, summary.json, checkpoints, config.json, noisy_labels.npz")
        sys.exit(1 if found else 0)
