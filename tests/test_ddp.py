"""DDP under torchrun on CPU (gloo, 2 processes) gives the single-process result with the same
global batch, and only rank 0 writes the run directory."""

import json
import subprocess
import sys

import pytest

ARGS = ["--dataset", "digits", "--model", "linear", "--noise", "uniform:0.4", "--method", "limit-g", "--beta", "1",
        "--train-size", "256", "--batch-size", "64", "--epochs", "3", "--lr", "0.01", "--device", "cpu", "--quiet"]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_match_one_process(tmp_path):
    single = subprocess.run([sys.executable, "-m", "limitlab", "train", *ARGS, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "limitlab", "train", *ARGS, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, (ddp.stdout[-2000:], ddp.stderr[-4000:])

    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["epoch"] for r in two] == [1, 2, 3]  # one row per epoch: only rank 0 wrote
    assert ddp.stdout.count("run directory:") == 1  # and only rank 0 printed
    assert len({r["val_accuracy"] for r in one}) > 1  # the numbers move, so matching them means something
    for a, b in zip(one, two):
        for key in ("train_loss", "train_q_fit", "train_noisy_accuracy", "val_accuracy", "test_accuracy",
                    "memorized_fraction"):
            assert b[key] == pytest.approx(a[key], abs=2e-3), key
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert s2["test_accuracy"] == pytest.approx(s1["test_accuracy"], abs=2e-3)
    assert s2["train_size"] == s1["train_size"] == 256
