"""Sweep reports from synthetic run directories with known numbers: selection by mean validation
accuracy, mean ± std, missing runs, CSV and PNG outputs."""

import csv
import io
import json
import statistics

import matplotlib.image
import pytest

from limitlab import rundir
from limitlab.analysis import plots, report, runs as runs_mod, tables
from limitlab.config import Config

CELL = {"dataset": "mnist", "train_size": 1000, "noise": "uniform:0.8"}
PNG = b"\x89PNG\r\n\x1a\n"


def make_run(root, name, val, test, train_noisy, epochs=3, complete=True, **overrides):
    """A run directory as limitlab writes it: config.json, metrics.jsonl and (if complete) summary.json."""
    config = Config(**{**CELL, **overrides})
    run = root / name
    run.mkdir(parents=True)
    rundir.write_json(run / rundir.CONFIG, config.to_dict())
    rows = [{"epoch": e, "train_noisy_accuracy": train_noisy * e / epochs, "val_accuracy": val * e / epochs,
             "test_accuracy": test * e / epochs, "info_lower_bound_bits": 0.5 * e} for e in range(1, epochs + 1)]
    rundir.write_metrics(run, rows)
    if complete:
        rundir.write_json(run / rundir.SUMMARY, {
            "method": config.method, "seed": config.seed, "test_accuracy": test, "best_val_accuracy": val,
            "best_epoch": epochs, "final_train_noisy_accuracy": train_noisy, "final_test_accuracy": test})
    return run


# seed -> (best val acc, test acc, final train acc on noisy labels)
BETA1 = {0: (0.50, 0.60, 0.20), 1: (0.50, 0.70, 0.25), 2: (0.50, 0.80, 0.30)}   # mean val 0.50
BETA10 = {0: (0.90, 0.95, 0.90), 1: (0.10, 0.95, 0.90), 2: (0.20, 0.95, 0.90)}  # mean val 0.40, best single seed
CE = {0: (0.30, 0.28, 1.00), 1: (0.34, 0.30, 0.99)}


@pytest.fixture
def sweep_root(tmp_path):
    root = tmp_path / "runs"
    for beta, table in ((1, BETA1), (10, BETA10)):
        for seed, (val, test, tr) in table.items():
            make_run(root, f"limit-g_beta{beta}_seed{seed}", val, test, tr, method="limit-g", beta=beta, seed=seed)
    for seed, (val, test, tr) in CE.items():
        make_run(root / "nested", f"ce_seed{seed}", val, test, tr, method="ce", seed=seed)
    (root / ".sweep" / "configs").mkdir(parents=True)  # the sweep's own files are not runs
    (root / ".sweep" / "configs" / rundir.CONFIG).write_text("{}")
    return root


def _row(rows, method):
    (row,) = [r for r in rows if r.method == method]
    return row


def test_collect_runs_finds_complete_and_partial_runs(sweep_root):
    make_run(sweep_root, "unfinished", 0.5, 0.5, 0.5, complete=False, method="limit-g", beta=1, seed=3)
    (sweep_root / "configured_only").mkdir()
    rundir.write_json(sweep_root / "configured_only" / rundir.CONFIG, Config(**CELL).to_dict())
    runs = runs_mod.collect_runs(sweep_root)
    assert len(runs) == 6 + 2 + 1
    partial = [r for r in runs if not r.complete]
    assert [r.name for r in partial] == ["unfinished"] and partial[0].epochs == 3
    assert "nested/ce_seed0" in {r.name for r in runs}


def test_selection_uses_the_best_mean_validation_accuracy(sweep_root):
    rows = tables.aggregate(runs_mod.collect_runs(sweep_root))
    limit = _row(rows, "limit-g")
    # beta=10 has the single best seed (0.90) and the best test accuracy, but the lower mean (0.40 < 0.50)
    assert limit.selected == {"beta": 1}
    assert limit.seeds == 3 and limit.seed_list == [0, 1, 2] and limit.settings == 2
    tests = [t for _, t, _ in BETA1.values()]
    trains = [tr for _, _, tr in BETA1.values()]
    assert limit.test_accuracy_mean == pytest.approx(statistics.mean(tests))
    assert limit.test_accuracy_std == pytest.approx(statistics.stdev(tests))
    assert limit.test_accuracy_mean == pytest.approx(0.70) and limit.test_accuracy_std == pytest.approx(0.10)
    assert limit.final_train_noisy_accuracy_mean == pytest.approx(statistics.mean(trains))
    assert limit.final_train_noisy_accuracy_std == pytest.approx(statistics.stdev(trains))
    assert limit.best_val_accuracy_mean == pytest.approx(0.50)
    assert limit.note == ""
    ce = _row(rows, "ce")
    assert ce.selected == {} and ce.seeds == 2
    assert ce.test_accuracy_mean == pytest.approx(0.29)
    assert ce.test_accuracy_std == pytest.approx(statistics.stdev([0.28, 0.30]))
    assert [r.method for r in rows] == ["ce", "limit-g"]  # table order: baselines first


def test_a_single_seed_has_no_std(tmp_path):
    make_run(tmp_path, "one", 0.4, 0.5, 0.6, method="mae", seed=0)
    (row,) = tables.aggregate(runs_mod.collect_runs(tmp_path))
    assert row.test_accuracy_mean == pytest.approx(0.5) and row.test_accuracy_std is None
    assert "0.500 |" in tables.table_markdown([row]) and "±" not in tables.table_markdown([row])


def test_partial_sweep_without_preset_marks_missing_seeds_and_unfinished_runs(sweep_root):
    make_run(sweep_root, "limit-g_beta1_seed3", 0.5, 0.5, 0.5, complete=False, method="limit-g", beta=1, seed=3)
    rows = tables.aggregate(runs_mod.collect_runs(sweep_root))
    assert _row(rows, "limit-g").note == "missing 1/4 seeds; 1 unfinished"
    assert _row(rows, "ce").note == ""


def test_partial_sweep_against_a_preset_marks_missing_cells_and_seeds(sweep_root, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"grids": [
        {"base": {**CELL, "method": "ce"}, "seeds": [0, 1, 2]},
        {"base": {**CELL, "method": "limit-g"}, "axes": {"beta": [1, 10, 100]}, "seeds": [0, 1, 2], "select": ["beta"]},
        {"base": {**CELL, "method": "limit-l"}, "axes": {"beta": [1, 10]}, "seeds": [0, 1, 2], "select": ["beta"]},
    ]}))
    rows = tables.aggregate(runs_mod.collect_runs(sweep_root), preset=str(grid))
    assert _row(rows, "ce").note == "missing 1/3 seeds"
    assert _row(rows, "limit-g").note == "3/6 runs of other settings missing"  # beta=100 never ran
    assert _row(rows, "limit-g").selected == {"beta": 1}
    missing = _row(rows, "limit-l")
    assert missing.note == "missing: no complete runs (0/6)" and missing.seeds == 0
    assert missing.test_accuracy_mean is None
    md = tables.table_markdown(rows)
    assert "missing 1/3 seeds" in md and "| limit-l | - | – |" in md


def test_csv_parses_and_holds_the_numbers(sweep_root):
    rows = tables.aggregate(runs_mod.collect_runs(sweep_root))
    parsed = list(csv.DictReader(io.StringIO(tables.table_csv(rows).decode())))
    assert [r["method"] for r in parsed] == ["ce", "limit-g"]
    limit = parsed[1]
    assert limit["selected"] == "beta=1" and limit["train_size"] == "1000" and limit["seeds"] == "3"
    assert float(limit["test_accuracy_mean"]) == pytest.approx(0.70)
    assert float(limit["test_accuracy_std"]) == pytest.approx(0.10)
    assert float(limit["final_train_noisy_accuracy_mean"]) == pytest.approx(0.25)
    assert len(limit["runs"].split(";")) == 3


def _check_png(data: bytes, path):
    assert data.startswith(PNG)
    path.write_bytes(data)
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > 300 and height > 200


def test_plots_are_valid_pngs(sweep_root, tmp_path):
    # a second noise rate, so that the accuracy-vs-noise lines have two points
    for seed, (val, test, tr) in CE.items():
        make_run(sweep_root, f"ce_p05_seed{seed}", val, test + 0.3, tr, method="ce", seed=seed, noise="uniform:0.5")
    runs = runs_mod.collect_runs(sweep_root)
    rows = tables.aggregate(runs)
    _check_png(plots.accuracy_vs_noise_plot(rows), tmp_path / "a.png")
    _check_png(plots.selected_curves_plot(rows), tmp_path / "c.png")
    _check_png(plots.accuracy_vs_noise_plot([]), tmp_path / "empty.png")  # nothing complete yet


def test_write_report_writes_all_files(sweep_root, tmp_path):
    out = tmp_path / "report"
    paths = report.write_report(sweep_root, out)
    assert set(paths) == {"report.md", "report.csv", "accuracy_vs_noise.png", "curves.png"}
    assert all(p.parent == out and p.exists() for p in paths.values())
    text = paths["report.md"].read_text()
    assert "| mnist | 1000 | uniform:0.8 | limit-g | beta=1 | 0.700 ± 0.100 |" in text
    assert paths["accuracy_vs_noise.png"].read_bytes().startswith(PNG)
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files
