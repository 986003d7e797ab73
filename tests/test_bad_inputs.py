"""Bad inputs found by probing the command line and the library: each is one sentence (LimitlabError;
the CLI prints it without a traceback and exits non-zero) and nothing is written."""

import errno
import json
import os
import sys
import textwrap

import numpy as np
import pytest
import torch

from limitlab import rundir
from limitlab.cli import main
from limitlab.errors import LimitlabError
from limitlab.noise_files import load_noisy_labels

ARGS = ["train", "--dataset", "digits", "--train-size", "200", "--epochs", "1", "--batch-size", "64", "--quiet"]


def one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("limitlab: error: ") and "\n" not in err and "Traceback" not in err
    return err


# ------------------------------------------------------------------------------ label files (--noise labels:FILE)
LABELS = np.arange(12) % 3


def test_a_sparse_label_tensor_is_one_sentence(tmp_path):
    torch.save(torch.from_numpy(LABELS).to_sparse(), tmp_path / "sparse.pt")
    with pytest.raises(LimitlabError, match=r"are a sparse tensor \(torch.sparse_coo\); save a dense one"):
        load_noisy_labels(str(tmp_path / "sparse.pt"), LABELS, 3)


def test_a_bfloat16_label_tensor_is_read_as_its_integer_values(tmp_path):
    torch.save(torch.from_numpy(LABELS).to(torch.bfloat16), tmp_path / "half.pt")
    labels = load_noisy_labels(str(tmp_path / "half.pt"), LABELS, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, LABELS)


def test_a_bfloat16_tensor_of_fractions_is_refused_as_not_integer(tmp_path):
    torch.save(torch.from_numpy(LABELS).to(torch.bfloat16) + 0.5, tmp_path / "half.pt")
    with pytest.raises(LimitlabError, match=r"are float32, not integer class indices 0..2"):
        load_noisy_labels(str(tmp_path / "half.pt"), LABELS, 3)


def test_a_dict_with_int_keys_is_found_by_the_key_text(tmp_path):
    other = (LABELS + 1) % 3
    torch.save({1: torch.from_numpy(LABELS), 2: torch.from_numpy(other)}, tmp_path / "rounds.pt")
    np.testing.assert_array_equal(load_noisy_labels(f"{tmp_path / 'rounds.pt'}:2", LABELS, 3), other)
    with pytest.raises(LimitlabError, match=r"has no key '3'; its keys are 1, 2$"):
        load_noisy_labels(f"{tmp_path / 'rounds.pt'}:3", LABELS, 3)


# ------------------------------------------------------------------------------ --model factories
NETS = '''
import torch
from torch import nn

SHARED = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

def no_parameters(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.AdaptiveAvgPool1d(num_classes))

class Rounded(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
    def forward(self, x):
        return self.fc(x.flatten(1)).long()

def integer_logits(input_shape, num_classes):
    return Rounded()

class EvalOnly(nn.Module):
    """Right in eval mode; in training mode it also returns the features, as some networks do."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.bn = nn.BatchNorm1d(64)
    def forward(self, x):
        z = self.bn(x.flatten(1))
        return (self.fc(z), z) if self.training else self.fc(z)

def eval_only(input_shape, num_classes):
    return EvalOnly()

def same_twice(input_shape, num_classes):
    return SHARED

def shared_layer(input_shape, num_classes):
    return nn.Sequential(SHARED, nn.ReLU(), nn.Linear(10, num_classes))
'''


@pytest.fixture()
def nets(tmp_path, monkeypatch):
    (tmp_path / "limitlab_probe_nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("limitlab_probe_nets", None)


@pytest.mark.parametrize("factory,message", [
    ("no_parameters", "returned a network without trainable parameters, so there is nothing to train"),
    ("integer_logits", "returns int64 logits, but they must be floating-point scores"),
    ("eval_only", "returns tuple in training mode (model.train()) for a batch of inputs of shape (2, 1, 8, 8), "
                  "but must return logits of shape (2, 10) (batch, number of classes) in training mode as in eval mode"),
    ("same_twice", "returned a network (or a trainable layer of one) that it had already returned"),
])
def test_a_bad_factory_is_one_sentence_and_nothing_is_written(nets, capsys, factory, message):
    out = nets / "run"
    assert main([*ARGS, "--model", f"limitlab_probe_nets:{factory}", "--out", str(out)]) == 2
    assert message in one_sentence(capsys)
    assert not out.exists()


def test_a_factory_sharing_a_layer_between_its_networks_is_refused(nets, capsys):
    out = nets / "run"
    assert main([*ARGS, "--model", "limitlab_probe_nets:shared_layer", "--out", str(out)]) == 2
    assert "that it had already returned" in one_sentence(capsys)
    assert not out.exists()


def test_a_shared_frozen_layer_is_not_shared_training():
    from limitlab.factories import build_from_factory

    frozen = torch.nn.Linear(4, 8).requires_grad_(False)  # e.g. a pretrained feature extractor

    def factory(input_shape, num_classes):
        return torch.nn.Sequential(frozen, torch.nn.ReLU(), torch.nn.Linear(8, num_classes))
    classifier, q_network = (build_from_factory(factory, (4,), 3, "f") for _ in range(2))
    assert classifier[0] is q_network[0] and classifier[2] is not q_network[2]


def test_the_training_mode_check_leaves_batchnorm_statistics_and_random_numbers_alone():
    from limitlab.factories import check_output_shape

    net = torch.nn.Sequential(torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(5)
    check_output_shape(net, torch.randn(2, 4) * 10, 3, "net")
    drawn = torch.rand(3)
    torch.manual_seed(5)
    torch.randn(2, 4)  # the batch above
    assert torch.equal(drawn, torch.rand(3))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and net.training


def test_cnn4_on_a_table_names_the_models_for_rows_of_features(tmp_path, capsys):
    rng = np.random.default_rng(0)
    table = tmp_path / "rows.csv"
    rows = ["a,b,c,label"] + [f"{x:.3f},{y:.3f},{z:.3f},{int(x > 0)}" for x, y, z in rng.normal(size=(200, 3))]
    table.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"table:{table}", "--label-column", "label", "--model", "cnn4",
                 "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    err = one_sentence(capsys)
    assert "model cnn4 needs 28×28 images [C, 28, 28], but the inputs are rows of 3 features" in err
    assert "use the mlp or linear model" in err
    assert not out.exists()


def test_cnn4_in_the_estimator_on_2d_data_is_one_sentence():
    from limitlab import LimitClassifier

    x, y = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32), np.repeat([0, 1], 20)
    with pytest.raises(ValueError, match=r"cnn4 needs 28×28 images .* rows of 5 features; for rows of features "
                                            r"use the mlp or linear model"):
        LimitClassifier(module="cnn4", epochs=1).fit(x, y)


# ------------------------------------------------------------------------------ the run directory's files
def test_a_full_disk_while_appending_metrics_is_one_sentence_and_leaves_no_torn_line(tmp_path, capsys, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell metrics.jsonl's file descriptor")
    real_write, appends = os.write, []

    def disk_full_at_the_second_epoch(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(rundir.METRICS):
            appends.append(len(data))
            if len(appends) == 2:
                real_write(fd, bytes(data)[: len(data) // 2])  # the disk fills up halfway through the line
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(os, "write", disk_full_at_the_second_epoch)
        assert main([*ARGS, "--epochs", "2", "--out", str(out)]) == 2
    err = one_sentence(capsys)
    assert err == f"limitlab: error: cannot write {out / rundir.METRICS}: No space left on device"
    lines = (out / rundir.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]   # epoch 1 intact, no half of epoch 2
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0  # once there is room again
    assert [r["epoch"] for r in rundir.read_metrics(out)] == [1, 2]


def _strict(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_summary_metrics_and_detection_are_strict_json_with_null_for_undefined_numbers(tmp_path, capsys):
    out = tmp_path / "clean"
    assert main([*ARGS, "--noise", "uniform:0", "--out", str(out)]) == 0  # nothing corrupted: undefined numbers
    summary = _strict((out / rundir.SUMMARY).read_text())
    assert summary["memorized_fraction"] is None and summary["corrected_fraction"] is None
    assert 0 < summary["test_accuracy"] <= 1
    rows = [_strict(line) for line in (out / rundir.METRICS).read_text().splitlines()]
    assert rows[-1]["memorized_fraction"] is None
    capsys.readouterr()
    assert main(["detect", str(out), "--quiet"]) == 0
    printed = _strict(capsys.readouterr().out)
    written = _strict((out / rundir.DETECTION).read_text())
    assert written == printed and written["num_corrupted"] == 0
    assert None in written["auroc"].values()  # AUROC is undefined without a corrupted label


# ------------------------------------------------------------------------------ sweeps
TINY = {"dataset": "digits", "train_size": 100, "epochs": 1, "batch_size": 64, "noise": "uniform:0.5", "method": "ce"}


def _grid(tmp_path, grid) -> str:
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    return str(path)


def test_a_launcher_option_without_equals_is_one_sentence(tmp_path, capsys):
    grid = _grid(tmp_path, {"base": TINY, "seeds": [0]})
    out = tmp_path / "out"
    assert main(["sweep", grid, "--out", str(out), "--launcher", "submitit", "--launcher-option", "cluster"]) == 2
    assert one_sentence(capsys) == ("limitlab: error: --launcher-option 'cluster' is not KEY=VALUE; write e.g. "
                                    "--launcher-option cluster=slurm or --launcher-option timeout_min=600")
    assert not out.exists()


def test_an_empty_grid_file_is_refused_instead_of_one_default_run(tmp_path, capsys):
    grid = tmp_path / "empty.json"
    grid.write_text("{}")
    out = tmp_path / "out"
    assert main(["sweep", str(grid), "--out", str(out)]) == 2
    err = one_sentence(capsys)
    assert "preset 'empty' sets no field (its base and axes are empty), so it would be one run of every default" in err
    assert not out.exists()


class _FinishAtOnce:
    """A launcher whose runs finish at the first poll with their files written (no subprocess)."""

    def __init__(self):
        self.started = []

    def start(self, name, cmd, env, out_path, err_path):
        self.started.append(name)
        return cmd

    def poll(self, cmd):
        run = __import__("pathlib").Path(cmd[cmd.index("--out") + 1])
        (run / rundir.CONFIG).write_text(open(cmd[cmd.index("--config") + 1]).read())
        (run / rundir.SUMMARY).write_text("{}")
        return 0, ""

    def stop(self, cmd):
        pass


def test_a_run_another_sweep_takes_after_the_check_is_reported_as_taken_and_left_alone(tmp_path, monkeypatch):
    """The check-then-start race, made deterministic: this sweep saw the run as new, then another sweep
    took its lock; this sweep must not start it (nor write its config or logs) and says who has it."""
    import subprocess

    from limitlab.experiments import sweep
    from limitlab.experiments.expand import expand

    grid = _grid(tmp_path, {"base": TINY, "seeds": [0, 1]})
    out = tmp_path / "out"
    mine, theirs = (s.name for s in expand(grid))
    other = subprocess.Popen([sys.executable, "-c", "import sys, time; from limitlab import runlock; "
                              f"runlock.claim({str(out / theirs)!r}); print('claimed', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert other.stdout.readline().strip() == "claimed"
        fake = _FinishAtOnce()
        monkeypatch.setattr(sweep, "LocalLauncher", lambda: fake)
        monkeypatch.setattr(sweep, "run_state", lambda spec, out_dir: ("new", ""))  # as seen before the claim
        statuses = {s.name: s for s in sweep.run_sweep(grid, out, progress=False, poll_seconds=0)}
        assert statuses[mine].state == "completed" and fake.started == [mine]
        assert statuses[theirs].state == "taken" and not statuses[theirs].ok
        assert statuses[theirs].message == f"taken by another sweep (process {other.pid}), which runs it"
        assert (out / theirs / rundir.LOCK).read_text().split()[0] == str(other.pid)  # still theirs
        assert not (out / ".sweep" / "configs" / f"{theirs}.json").exists()
        assert not (out / ".sweep" / "logs" / f"{theirs}.err").exists()
        assert not (out / mine / rundir.LOCK).exists()  # this sweep let go of its own run's lock
    finally:
        other.kill()
        other.wait()


def test_two_sweeps_on_one_folder_share_the_runs_without_failures(tmp_path):
    """Two real sweeps started together: every run is trained once, by one of them; the other reports
    it as taken (or done, when it looked after the run ended), never as failed."""
    import subprocess

    grid = _grid(tmp_path, {"base": TINY, "seeds": [0, 1]})
    out = tmp_path / "out"
    script = ("import json, sys; from limitlab.experiments.sweep import run_sweep; "
              f"print(json.dumps([[s.name, s.state, s.message] for s in run_sweep({grid!r}, {str(out)!r}, "
              "progress=False, poll_seconds=0.05)]))")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    sweeps = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in sweeps]
    states = [{name: (state, message) for name, state, message in json.loads(stdout)} for stdout, _ in results]
    for name in states[0]:
        pair = sorted(s[name][0] for s in states)
        assert pair in (["completed", "taken"], ["completed", "done"]), (name, states)
        assert (out / name / rundir.SUMMARY).is_file() and not (out / name / rundir.LOCK).exists()
    assert not any("FAILED" in stderr for _, stderr in results), results


# ------------------------------------------------------------------------------ report
def test_report_on_a_folder_without_runs_is_one_sentence_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    assert main(["report", str(tmp_path)]) == 2
    err = one_sentence(capsys)
    assert f"limitlab: error: {tmp_path} holds no runs" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_report_counts_distinct_seeds_and_names_duplicate_runs(tmp_path):
    from limitlab.analysis import runs, tables
    from limitlab.config import Config

    def run(name, seed, test):
        config = Config(dataset="mnist", noise="uniform:0.8", method="ce", seed=seed)
        rundir.write_json(tmp_path / name / rundir.CONFIG, config.to_dict())
        rundir.write_json(tmp_path / name / rundir.SUMMARY, {
            "test_accuracy": test, "best_val_accuracy": 0.5, "final_train_noisy_accuracy": 0.9, "best_epoch": 1})

    for copy in ("a", "b", "c"):  # three copies of the seed-0 run
        run(f"copy_{copy}", seed=0, test=0.6)
    (row,) = tables.aggregate(runs.collect_runs(tmp_path))
    assert row.seeds == 1 and row.seed_list == [0] and len(row.runs) == 3
    assert row.test_accuracy_mean == pytest.approx(0.6) and row.test_accuracy_std is None  # not "± 0.000"
    assert row.note == "duplicate runs (seed 0 ×3) averaged per seed"
    run("seed1", seed=1, test=0.8)  # a second seed: the copies of seed 0 count once in mean and std
    (row,) = tables.aggregate(runs.collect_runs(tmp_path))
    assert row.seeds == 2 and row.test_accuracy_mean == pytest.approx(0.7)
    assert row.test_accuracy_std == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert "| 0.700 ± 0.141 |" in tables.table_markdown([row]) and "| 2 | duplicate runs (seed 0 ×3)" in \
        tables.table_markdown([row])


def test_the_lock_works_without_hard_links(tmp_path, monkeypatch):
    from limitlab import runlock

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    with runlock.RunLock(tmp_path):
        assert (tmp_path / rundir.LOCK).read_text() == str(os.getpid())
        assert sorted(p.name for p in tmp_path.iterdir()) == [rundir.LOCK]
    assert not (tmp_path / rundir.LOCK).exists()
    (tmp_path / rundir.LOCK).write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(LimitlabError, match=f"is in use by process {os.getppid()}"):
        with runlock.RunLock(tmp_path):
            pass
