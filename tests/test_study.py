"""`limitlab study memorization` end to end on tiny settings: runs, a valid PNG and CSV."""

import csv

import matplotlib.image
import pytest

from limitlab.cli import main


def test_memorization_study_writes_plot_and_curves(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["study", "memorization", "--dataset", "digits", "--noise", "uniform:0.6", "--epochs", "2",
            "--train-size", "150", "--quiet", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for name in ("ce", "ce+dropout0.5", "ce+weight-decay0.0001", "limit-l beta10"):
        assert name in printed

    png = (out / "memorization.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    height, width, _ = matplotlib.image.imread(out / "memorization.png").shape
    assert width > 1000 and height > 300

    with open(out / "memorization.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["run"] for r in rows} == {"ce", "ce+dropout0.5", "ce+weight-decay0.0001", "limit-l beta10"}
    assert len(rows) == 4 * 2
    for r in rows:
        assert 0.0 <= float(r["train_noisy_accuracy"]) <= 1.0
        assert float(r["info_lower_bound_bits"]) >= 0.0

    # the study reuses finished runs: a second call trains nothing and rewrites the same curves
    mtime = (out / "ce" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "ce" / "summary.json").stat().st_mtime_ns == mtime


def test_study_uses_the_paper_settings():
    from limitlab.experiments.presets import memorization_configs

    configs = memorization_configs()
    assert all(c.dataset == "mnist" and c.noise == "uniform:0.8" and c.model == "mlp" and c.patience is None
               and c.clean_validation and c.epochs == 400 for c in configs.values())
    assert [c.method for c in configs.values()] == ["ce", "ce", "ce", "limit-l"]
    assert pytest.approx(0.5) == list(configs.values())[1].dropout
