"""benchmarks/patience_check.py: replaying early stopping with a shorter patience gives exactly what a
run trained with that patience reports."""

from __future__ import annotations

import json

from conftest import load_benchmark
from limitlab.config import Config
from limitlab.train import train



def load_script():
    return load_benchmark("patience_check")


def test_replay_by_hand():
    replay = load_script().replay
    vals = [0.1, 0.3, 0.2, 0.2, 0.25, 0.4, 0.1]
    history = [{"epoch": i + 1, "val_accuracy": v, "test_accuracy": 10 * v} for i, v in enumerate(vals)]
    assert replay(history, 3)["epoch"] == 2      # epochs 3, 4, 5 bring nothing new: stop before epoch 6
    assert replay(history, 4)["epoch"] == 6
    assert replay(history, 1)["epoch"] == 2
    assert replay(history[:1], 5)["epoch"] == 1


def test_replay_matches_a_real_run_with_that_patience(tmp_path):
    replay = load_script().replay
    base = dict(dataset="digits", noise="uniform:0.7", train_size=100, epochs=12, batch_size=64, device="cpu")
    long = train(Config(**base, patience=None), tmp_path / "long", progress=False)
    history = [json.loads(line) for line in (tmp_path / "long" / "metrics.jsonl").read_text().splitlines()]
    assert long["epochs_run"] == 12
    stopped = 0
    for patience in (2, 3):
        short = train(Config(**base, patience=patience), tmp_path / f"p{patience}", progress=False)
        pick = replay(history, patience)
        assert pick["epoch"] == short["best_epoch"]
        assert pick["test_accuracy"] == short["test_accuracy"]
        stopped += short["stopped_early"]
    assert stopped  # the check means something only where a short run did stop early
