"""End-to-end: the CLI on tiny data, the run directory contract, resume, reproducibility, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from limitlab.cli import main
from limitlab.config import Config
from limitlab.train import train

TINY = ["--dataset", "digits", "--noise", "uniform:0.5", "--train-size", "300", "--epochs", "4", "--batch-size", "64",
        "--quiet"]


def _run(args, capsys=None):
    code = main(args)
    err = capsys.readouterr().err if capsys else ""
    return code, err


def test_train_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = _run(["train", *TINY, "--method", "limit-g", "--beta", "1", "--seed", "3", "--out", str(out)], capsys)
    assert code == 0
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == {"config.json", "metrics.jsonl", "noisy_labels.npz", "summary.json",
                     "checkpoints/last.pt", "checkpoints/best.pt"}
    config = Config.load(out / "config.json")
    assert (config.method, config.beta, config.seed, config.train_size) == ("limit-g", 1.0, 3, 300)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for key in ("train_loss", "train_q_fit", "train_grad_norm_penalty", "train_noisy_accuracy", "memorized_fraction",
                "corrected_fraction", "val_accuracy", "test_accuracy", "info_lower_bound_bits", "seconds"):
        assert all(key in r for r in rows), key

    summary = json.loads((out / "summary.json").read_text())
    best = max(rows, key=lambda r: r["val_accuracy"])  # first maximum = the best epoch
    assert summary["best_epoch"] == best["epoch"]
    assert summary["test_accuracy"] == best["test_accuracy"]
    assert summary["best_val_accuracy"] == best["val_accuracy"]
    assert summary["final_train_noisy_accuracy"] == rows[-1]["train_noisy_accuracy"]
    assert summary["memorized_fraction"] == rows[-1]["memorized_fraction"]
    assert summary["info_lower_bound_bits"] == rows[-1]["info_lower_bound_bits"]

    labels = np.load(out / "noisy_labels.npz")
    assert len(labels["train_noisy"]) == 300
    corrupted = labels["train_noisy"] != labels["train_true"]
    np.testing.assert_array_equal(labels["train_corrupted"], corrupted)
    assert float(labels["train_rate"]) == pytest.approx(corrupted.mean())
    assert 0.35 < corrupted.mean() < 0.65  # uniform:0.5 on 300 labels
    assert set(labels["train_index"]).isdisjoint(labels["val_index"])

    best_ckpt = torch.load(out / "checkpoints" / "best.pt", weights_only=False)
    assert best_ckpt["epoch"] == summary["best_epoch"]


def test_same_seed_same_numbers_and_other_seed_differs(tmp_path):
    def run(seed, name):
        config = Config(dataset="digits", noise="uniform:0.5", train_size=300, epochs=3, batch_size=64,
                        method="limit-l", sample_lambda=50.0, seed=seed)
        summary = train(config, tmp_path / name, progress=False)
        return {k: v for k, v in summary.items() if k != "seconds"}

    a, b, c = run(0, "a"), run(0, "b"), run(1, "c")
    assert a == b
    assert a != c


def test_killed_run_resumes_to_the_same_result(tmp_path, capsys):
    args = [*TINY, "--method", "limit-l", "--epochs", "5", "--warmup", "1", "--sample-lambda", "20"]
    assert _run(["train", *args, "--out", str(tmp_path / "full")], capsys)[0] == 0

    def kill_after_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    config = Config(dataset="digits", noise="uniform:0.5", train_size=300, epochs=5, batch_size=64,
                    method="limit-l", warmup=1, sample_lambda=20.0)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=False, on_epoch_end=kill_after_epoch_2)
    assert not (tmp_path / "killed" / "summary.json").exists()
    assert not (tmp_path / "killed" / ".lock").exists()

    # resuming elsewhere may name another device; everything else comes from config.json
    assert _run(["train", "--out", str(tmp_path / "killed"), "--resume", "--device", "cpu", "--quiet"], capsys)[0] == 0
    saved = Config.load(tmp_path / "killed" / "config.json")
    assert saved.device == "cpu" and saved.warmup == 1 and saved.sample_lambda == 20.0
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "summary.json").read_text())
    full.pop("seconds"), resumed.pop("seconds")
    assert resumed == full
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    read = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(read(tmp_path / "killed")) == strip(read(tmp_path / "full"))


@pytest.mark.parametrize("test_every", [0, 2])
def test_test_pass_runs_at_new_best_and_last_epochs_unless_asked_for_more(tmp_path, test_every):
    config = Config(dataset="digits", noise="uniform:0.6", train_size=200, epochs=6, batch_size=64, method="ce",
                    patience=None, test_every=test_every)
    summary = train(config, tmp_path / "r", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    best_so_far, tested = -1.0, []
    for r in rows:
        if r["val_accuracy"] > best_so_far or r["epoch"] == 6 or (test_every and r["epoch"] % test_every == 0):
            tested.append(r["epoch"])
        best_so_far = max(best_so_far, r["val_accuracy"])
    assert [r["epoch"] for r in rows if r["test_accuracy"] is not None] == tested
    assert summary["test_accuracy"] == rows[summary["best_epoch"] - 1]["test_accuracy"] is not None
    assert summary["final_test_accuracy"] == rows[-1]["test_accuracy"] is not None


def test_early_stopping_stops_after_patience(tmp_path):
    config = Config(dataset="digits", noise="uniform:0.8", train_size=200, epochs=60, patience=3, batch_size=64,
                    method="ce")
    summary = train(config, tmp_path / "r", progress=False)
    assert summary["stopped_early"]
    assert summary["epochs_run"] == summary["best_epoch"] + 3


def test_clean_validation_uses_true_labels(tmp_path):
    config = Config(dataset="digits", noise="uniform:0.6", train_size=100, epochs=1, method="ce",
                    clean_validation=True)
    train(config, tmp_path / "r", progress=False)
    labels = np.load(tmp_path / "r" / "noisy_labels.npz")
    np.testing.assert_array_equal(labels["val_labels"], labels["val_true"])
    assert labels["train_corrupted"].any()


def test_mnist_run_end_to_end(tmp_path, capsys, data_root):
    out = tmp_path / "mnist"
    code, _ = _run(["train", "--dataset", "mnist", "--data-dir", str(data_root), "--noise", "uniform:0.8",
                    "--train-size", "256", "--method", "limit-g", "--beta", "1", "--epochs", "1", "--seed", "0",
                    "--quiet", "--out", str(out)], capsys)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_size"] == 256 and 0.0 <= summary["test_accuracy"] <= 1.0
    labels = np.load(out / "noisy_labels.npz")
    assert len(labels["val_index"]) == 12000  # 20% of the 60k official training set


@pytest.mark.parametrize("args, message", [
    (["--dataset", "cifar7"], "unknown dataset"),
    (["--method", "sgd"], "unknown method"),
    (["--noise", "gaussian:0.3"], "noise"),
    (["--noise", "uniform:1.5"], "outside [0, 1]"),
    (["--noise", "uniform:-0.1"], "outside [0, 1]"),
    (["--noise", "matrix:/nonexistent/T.csv"], "T.csv"),
    (["--model", "cnn4"], "28×28"),
    (["--model", "resnet1000"], "unknown model"),
    (["--beta", "-1"], "--beta"),
    (["--test-every", "-1"], "--test-every"),
    (["--train-size", "100000"], "train"),
    (["--dataset", "mnist", "--data-dir", "EMPTY"], "train-images-idx3-ubyte"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(tmp_path, capsys, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(empty) if a == "EMPTY" else a for a in args]
    out = tmp_path / "out"
    code, err = _run(["train", "--epochs", "1", "--quiet", *args, "--out", str(out)], capsys)
    assert code != 0
    assert message in err
    assert err.startswith("limitlab: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_existing_output_directory_is_protected(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(["train", *TINY, "--epochs", "1", "--method", "ce", "--out", str(out)], capsys)[0] == 0
    before = (out / "summary.json").read_bytes()
    code, err = _run(["train", *TINY, "--epochs", "1", "--method", "ce", "--out", str(out)], capsys)
    assert code != 0 and "--resume" in err and "--overwrite" in err
    assert (out / "summary.json").read_bytes() == before

    # a non-run directory is never deleted, even with --overwrite
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    code, err = _run(["train", *TINY, "--epochs", "1", "--out", str(other), "--overwrite"], capsys)
    assert code != 0 and "not a limitlab run directory" in err
    assert (other / "holiday.jpg").exists()

    # --resume with a flag that contradicts the saved config
    code, err = _run(["train", "--out", str(out), "--resume", "--beta", "7"], capsys)
    assert code != 0 and "--beta" in err

    # --overwrite replaces a finished run
    assert _run(["train", *TINY, "--epochs", "2", "--method", "ce", "--out", str(out), "--overwrite"], capsys)[0] == 0
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 2


def test_output_directory_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(Config(dataset="digits", epochs=1).to_dict()))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (out / ".lock").write_text(str(sleeper.pid))
        code, err = _run(["train", "--out", str(out), "--resume", "--quiet"], capsys)
        assert code != 0 and "in use by process" in err
    finally:
        sleeper.kill()
        sleeper.wait()
    # the lock of a dead process is stale: the run proceeds
    code, _ = _run(["train", "--out", str(out), "--resume", "--quiet"], capsys)
    assert code == 0


def test_nan_loss_stops_with_a_clear_error(tmp_path, capsys):
    code, err = _run(["train", *TINY, "--method", "ce", "--lr", "1e30", "--epochs", "3", "--out", str(tmp_path / "r")],
                     capsys)
    assert code != 0 and "diverged" in err and "--lr" in err
    assert not (tmp_path / "r" / "summary.json").exists()


def test_help_lists_every_flag():
    result = subprocess.run([sys.executable, "-m", "limitlab", "train", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--dataset", "--data-dir", "--noise", "--train-size", "--clean-validation", "--method", "--beta",
                 "--sample-lambda", "--warmup", "--epochs", "--patience", "--seed", "--device", "--out", "--resume",
                 "--overwrite"):
        assert flag in result.stdout, flag


@pytest.mark.parametrize("command", ["demo", "study", "detect", "sweep", "report"])
def test_help_shows_only_meaningful_defaults(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text
    if command == "demo":
        assert "seed (default: 0)" in text  # a zero default is still shown


def test_config_file_recreates_a_run_and_flags_override_it(tmp_path, capsys):
    first = tmp_path / "first"
    assert _run(["train", *TINY, "--method", "limit-g", "--beta", "2", "--epochs", "2", "--out", str(first)], capsys)[0] == 0
    again = tmp_path / "again"
    assert _run(["train", "--config", str(first / "config.json"), "--quiet", "--out", str(again)], capsys)[0] == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (first, again))
    a.pop("seconds"), b.pop("seconds")
    assert a == b  # a run is re-created from its config.json alone
    other = tmp_path / "other"
    assert _run(["train", "--config", str(first / "config.json"), "--beta", "5", "--quiet", "--out", str(other)],
                capsys)[0] == 0
    assert Config.load(other / "config.json").beta == 5.0
    assert Config.load(other / "config.json").method == "limit-g"


def test_presets_sweep_report_detect_commands(tmp_path, capsys):
    assert main(["presets", "mnist-n1000-uniform0.8-limit"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed and all(line.startswith("mnist-n1000-uniform0.8-limit") for line in listed)

    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"description": "two tiny runs", "seeds": [0], "select": ["beta"],
                                "base": {"dataset": "digits", "noise": "uniform:0.5", "train_size": 100,
                                         "epochs": 1, "batch_size": 64, "method": "limit-l"},
                                "axes": {"beta": [1.0, 10.0]}}))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "sw"), "--dry-run", "--quiet"]) == 0
    assert not (tmp_path / "sw").exists() or not any(p.name.startswith("digits") for p in (tmp_path / "sw").iterdir())
    assert main(["sweep", str(grid), "--out", str(tmp_path / "sw"), "--jobs", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "sw"), "--preset", str(grid)]) == 0
    report = capsys.readouterr().out
    assert "limit-l" in report and (tmp_path / "sw" / "report.csv").exists()

    run = next(p for p in (tmp_path / "sw").iterdir() if p.name.startswith("digits"))
    assert main(["detect", str(run), "--quiet", "--top", "8"]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == "limit_gradient_mismatch"
    assert (run / "label_errors.csv").exists()

    for args in (["report", str(tmp_path / "nowhere")], ["detect", str(tmp_path / "nowhere")],
                 ["sweep", "mnist-n1000-uniform0.8-limitg", "--out", str(tmp_path / "x"), "--dry-run"]):
        assert main(args) != 0
        err = capsys.readouterr().err
        assert err.startswith("limitlab: error:") and "Traceback" not in err


def test_result_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    from limitlab import rundir

    rundir.atomic_write_bytes(tmp_path / "a.json", b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_demo_prints_ce_and_limit_side_by_side(tmp_path, capsys):
    assert main(["demo", "--epochs", "2", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "train acc on noisy labels" in out[0] and "memorized" in out[0]
    assert out[1].split()[0] == "ce" and out[2].split()[0] == "limit-l"
    # running it again replaces the earlier demo runs instead of failing
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
