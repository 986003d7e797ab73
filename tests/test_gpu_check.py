"""benchmarks/gpu_check.py in its CPU smoke mode: every section runs (tiny sizes, gloo instead of
NCCL, no compilation), so the one-command GPU check cannot rot before a GPU is available."""

from __future__ import annotations

import json

import numpy as np

from conftest import load_benchmark
from limitlab.data import load_dataset



def load_script():
    return load_benchmark("gpu_check")


def test_generated_cifar_archive_reads_as_cifar10(tmp_path):
    load_script().write_cifar10_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", 23, 7, seed=1)
    data = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert tuple(data.train_images.shape) == (23, 3, 32, 32) and tuple(data.test_images.shape) == (7, 3, 32, 32)
    assert data.train_labels.min() >= 0 and data.train_labels.max() <= 9
    # images of one class share a pattern: closer to their class mean than to other classes' means
    x, y = data.train_images.float().flatten(1).numpy(), data.train_labels.numpy()
    means = {c: x[y == c].mean(0) for c in np.unique(y)}
    nearest = [min(means, key=lambda c: np.abs(row - means[c]).mean()) for row in x]
    assert np.mean(np.array(nearest) == y) > 0.9


def test_smoke_runs_every_section(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the child processes
    out = tmp_path / "gpu_check.json"
    assert load_script().main(["--smoke", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    sections = r["sections"]
    assert set(sections) == {"env", "resnet", "ddp", "sharing", "resnet-compile", "train"}
    assert r["mode"] == "smoke" and sections["env"]["device"] == "cpu"

    variants = sections["resnet"]["variants"]
    for method in ("ce", "limit-l"):
        for variant in ("fp32 eager", "bf16 + channels_last"):
            assert variants[f"{method} | {variant}"]["images_per_s"] > 0
        assert "skipped" in variants[f"{method} | bf16 + channels_last + compile"]
    assert set(sections["resnet"]["limit_over_ce_time"]) == {"fp32 eager", "bf16 + channels_last"}

    train = sections["train"]
    assert train["returncode"] == 0 and train["train_size"] == 8 and len(train["epoch_seconds"]) == 2
    assert 0.0 <= train["test_accuracy"] <= 1.0
    assert sections["ddp"]["returncode"] == 0 and sections["ddp"]["backend"] == "gloo"

    shared = sections["sharing"]["processes"]
    assert set(shared) == {"1", "2"}
    assert len(shared["2"]["images_per_s_each"]) == 2 and all(v > 0 for v in shared["2"]["images_per_s_each"])
    assert shared["2"]["images_per_s_total"] == sum(shared["2"]["images_per_s_each"])
