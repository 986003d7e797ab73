"""Presets, their expansion into runs, and the sweep scheduler.

Only test_sweep_runs_all_then_skips_all starts new runs as subprocesses (`limitlab train --config FILE`);
the others use `limitlab train --resume`, a fake launcher, or no subprocess at all.
"""

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from limitlab import rundir
from limitlab.experiments import sweep
from limitlab.config import Config
from limitlab.errors import LimitlabError
from limitlab.experiments.presets import PRESETS, list_presets, load_grid
from limitlab.experiments.expand import RunSpec, expand
from limitlab.experiments.launchers import build_command
from limitlab.experiments.sweep import run_sweep
from limitlab.train import train

@pytest.fixture(autouse=True)
def one_thread():
    """In-process runs use one thread, like the sweep's subprocesses with jobs=2 on 2 cores: faster on a
    busy machine, and the same arithmetic when a resumed run is compared with a clean one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
TINY = {"dataset": "digits", "train_size": 100, "epochs": 1, "batch_size": 64, "noise": "uniform:0.5"}


def _write_grid(path: Path, grid: dict) -> Path:
    path.write_text(json.dumps(grid))
    return path


# ------------------------------------------------------------------------------------------ presets
def test_cell_preset_is_8_betas_times_5_seeds():
    specs = expand("mnist-n1000-uniform0.8-limit-g")
    assert len(specs) == 40
    pairs = {(s.config.beta, s.config.seed) for s in specs}
    assert pairs == set(itertools.product([0, 0.1, 0.3, 1, 3, 10, 30, 100], range(5)))
    for s in specs:
        c = s.config
        assert (c.dataset, c.train_size, c.noise, c.method) == ("mnist", 1000, "uniform:0.8", "limit-g")
        assert (c.epochs, c.patience, c.lr, c.batch_size) == (400, 100, 1e-3, 256)
        assert s.depends_on == []
    assert "mnist_n1000_uniform0.8_limit-g_beta10_seed0" in {s.name for s in specs}


def test_mnist_group_preset_count_from_the_tables():
    # settings per cell, from docs/method.md §3 and the reference code's grids
    per_cell = {"ce": 1, "ce-gn": 2 * 4, "mae": 1, "gce": 3, "fw": 1, "dmi": 4, "penalize": 4 * 5,
                "limit-g": 8, "limit-l": 8, "limit-g +S": 8 * 4, "limit-l +S": 8 * 4, "limit-g+": 8, "limit-l+": 8}
    cells = 3 * 3  # n ∈ {1000, 10000, all} × p ∈ {0.5, 0.8, 0.89}
    specs = expand("mnist-uniform")
    assert len(specs) == cells * sum(per_cell.values()) * 5
    assert len({s.name for s in specs}) == len(specs)
    assert {(s.config.train_size, s.config.noise) for s in specs} == set(
        itertools.product([1000, 10000, None], ["uniform:0.5", "uniform:0.8", "uniform:0.89"]))
    assert {s.config.seed for s in specs} == set(range(5))
    assert all(s.config.patience == 100 and s.config.epochs == 400 for s in specs)


def test_cifar10_group_presets_and_patience_rules():
    for name, noises in (("cifar10-uniform", [f"uniform:{p}" for p in (0.2, 0.4, 0.6, 0.8)]),
                         ("cifar10-pair", [f"pair-cifar10:{p}" for p in (0.2, 0.4, 0.6, 0.8)])):
        specs = expand(name)
        # ce, mae, fw, dmi × 4 lr, limit-g/l × 7 β, limit-g+/l+ × 7 β; one seed
        assert len(specs) == 4 * (1 + 1 + 1 + 4 + 7 + 7 + 7 + 7)
        assert {s.config.noise for s in specs} == set(noises)
        for s in specs:
            c = s.config
            assert c.model == "resnet34" and c.dataset == "cifar10"
            assert c.patience == (200 if c.method.startswith("limit") else 100), s.name
    c100 = expand("cifar100-uniform0.4")
    assert {s.config.dataset for s in c100} == {"cifar100"} and {s.config.noise for s in c100} == {"uniform:0.4"}
    clothing = expand("clothing1m")
    assert {s.config.method for s in clothing} == {"ce", "limit-g", "limit-l"}
    assert all(c.config.model == "resnet50" and c.config.pretrained and c.config.train_eval_every == 0
               for c in clothing)


def test_memorization_preset_reuses_the_study_configs():
    from limitlab.experiments.presets import memorization_configs

    specs = expand("memorization")
    assert [s.config for s in specs] == list(memorization_configs().values())


def test_every_preset_expands_with_unique_safe_names():
    assert len(list_presets()) == len(PRESETS)
    assert all(description and "\n" not in description for _, description in list_presets())
    names = set()
    for preset in ("mnist-uniform", "cifar10-uniform", "cifar10-pair", "cifar100-uniform0.4", "clothing1m",
                   "memorization"):
        specs = expand(preset)
        assert len({s.name for s in specs}) == len(specs), preset
        for s in specs:
            assert SAFE.match(s.name) and len(s.name) < 200, s.name
        names |= {s.name for s in specs}
    # cell presets name their runs as the group presets do, so a cell run is reused by the table
    assert {s.name for s in expand("mnist-nall-uniform0.89-dmi")} <= names


def test_ce_dependency_is_the_same_cell_and_seed_and_comes_first(tmp_path):
    specs = expand("mnist-n1000-uniform0.8")
    index = {s.name: i for i, s in enumerate(specs)}
    dependent = [s for s in specs if s.depends_on]
    assert {s.config.method for s in dependent} == {"fw", "dmi", "limit-g", "limit-l"}
    assert all(s.config.q_init_from == "@ce" for s in dependent if s.config.method.startswith("limit"))
    for s in dependent:
        (dep,) = s.depends_on
        ce = specs[index[dep]]
        assert index[dep] < index[s.name]
        assert ce.config.method == "ce" and ce.config.seed == s.config.seed
        assert (ce.config.train_size, ce.config.noise) == (s.config.train_size, s.config.noise)
        resolved = s.resolved_config(tmp_path)
        field = "init_from" if s.config.method in ("fw", "dmi") else "q_init_from"
        assert getattr(resolved, field) == str(tmp_path / dep)
    # a cell preset of a dependent method brings its CE runs along
    dmi = expand("mnist-n1000-uniform0.8-dmi")
    assert len(dmi) == 5 + 4 * 5
    assert [s.config.method for s in dmi[:5]] == ["ce"] * 5


def test_ce_dependency_is_added_when_the_grid_lacks_it(tmp_path):
    path = _write_grid(tmp_path / "g.json", {"base": {**TINY, "method": "dmi", "init_from": "@ce", "patience": 7},
                                             "axes": {"lr": [1e-3, 1e-4]}, "seeds": [3], "select": ["lr"]})
    specs = expand(path)
    assert [s.config.method for s in specs] == ["ce", "dmi", "dmi"]
    ce = specs[0].config
    assert ce.lr == Config().lr and ce.init_from is None and ce.seed == 3 and ce.train_size == 100
    assert all(s.depends_on == [specs[0].name] for s in specs[1:])


# ----------------------------------------------------------------------------------------- load_grid
def test_load_grid_from_json(tmp_path):
    path = _write_grid(tmp_path / "mine.json", {
        "description": "two methods", "base": TINY, "axes": {"method": ["ce", "limit-l"], "beta": [1, 10]},
        "seeds": [0, 1], "select": ["beta"]})
    preset = load_grid(str(path))
    assert preset.name == "mine" and preset.description == "two methods" and preset.select == ("beta",)
    specs = expand(path)
    # beta is not a CE option: one CE run per seed (at the default beta), two betas for LIMIT
    assert len(specs) == 2 + 2 * 2
    assert {(s.config.method, s.config.beta, s.config.seed) for s in specs} == {
        ("ce", Config().beta, 0), ("ce", Config().beta, 1), *itertools.product(["limit-l"], [1, 10], [0, 1])}
    assert all("beta" not in s.name for s in specs if s.config.method == "ce")
    # several grids in one file; a preset written out reads back the same
    multi = _write_grid(tmp_path / "multi.json", PRESETS["mnist-n1000-uniform0.8-fw"].to_dict())
    assert [s.name for s in expand(multi)] == [s.name for s in expand("mnist-n1000-uniform0.8-fw")]


def test_unknown_preset_suggests_close_names():
    with pytest.raises(LimitlabError, match="did you mean mnist-n1000-uniform0.8-limit-g"):
        load_grid("mnist-n1000-uniform0.8-limitg")


def test_bad_json_and_unknown_fields_are_one_sentence_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"base": {"dataset": "digits",}')
    with pytest.raises(LimitlabError, match="not valid JSON"):
        load_grid(bad)
    with pytest.raises(LimitlabError, match="cannot read the grid file"):
        load_grid(tmp_path / "missing.json")
    typo = _write_grid(tmp_path / "typo.json", {"base": {"betta": 1}})
    with pytest.raises(LimitlabError, match=r"unknown Config field.*'betta'.*did you mean 'beta'"):
        load_grid(typo)
    axis = _write_grid(tmp_path / "axis.json", {"axes": {"methods": ["ce"]}})
    with pytest.raises(LimitlabError, match="methods"):
        load_grid(axis)
    with pytest.raises(LimitlabError, match="non-empty list"):
        load_grid(_write_grid(tmp_path / "a.json", {"axes": {"beta": 3}}))
    with pytest.raises(LimitlabError, match="seeds"):
        load_grid(_write_grid(tmp_path / "s.json", {"seeds": ["0"]}))
    with pytest.raises(LimitlabError, match="not a known dependency"):
        expand(_write_grid(tmp_path / "d.json", {"base": {**TINY, "method": "fw", "init_from": "@cee"}}))
    with pytest.raises(LimitlabError, match="gce-q"):
        expand(_write_grid(tmp_path / "v.json", {"base": {**TINY, "method": "gce", "gce_q": 2}}))


# ------------------------------------------------------------------------------------------ commands
def test_build_command(tmp_path):
    spec = RunSpec("r", Config(**TINY))
    new = build_command(spec, tmp_path / "r", resume=False, config_file=tmp_path / "r.json")
    assert new[:4] == [sys.executable, "-m", "limitlab", "train"]
    assert new[new.index("--config") + 1] == str(tmp_path / "r.json")
    assert new[new.index("--out") + 1] == str(tmp_path / "r")
    resume = build_command(spec, tmp_path / "r", resume=True)
    assert "--resume" in resume and "--config" not in resume
    assert resume[resume.index("--out") + 1] == str(tmp_path / "r")


class _FakeLauncher:
    """Records what the scheduler starts; a run 'finishes' at the next poll, writing its files."""

    def __init__(self):
        self.running, self.max_running, self.started = set(), 0, []

    def start(self, name, cmd, env, out_path, err_path):
        self.running.add(name)
        self.max_running = max(self.max_running, len(self.running))
        self.started.append((name, cmd, env, set(self.running)))
        return (name, cmd)

    def poll(self, handle):
        name, cmd = handle
        run = Path(cmd[cmd.index("--out") + 1])
        run.mkdir(parents=True, exist_ok=True)
        if "--config" in cmd:
            (run / rundir.CONFIG).write_text(Path(cmd[cmd.index("--config") + 1]).read_text())
        (run / rundir.SUMMARY).write_text("{}")
        self.running.discard(name)
        return 0, ""

    def stop(self, handle):
        pass


def test_scheduler_jobs_threads_gpus_and_dependencies(tmp_path, monkeypatch):
    fake = _FakeLauncher()
    monkeypatch.setattr(sweep, "LocalLauncher", lambda: fake)
    monkeypatch.setattr(sweep, "visible_gpus", lambda: ["0", "1"])
    monkeypatch.setattr(sweep, "cores", lambda: 8)
    path = _write_grid(tmp_path / "g.json", {"grids": [
        {"base": {**TINY, "method": "ce"}, "seeds": [0, 1, 2]},
        {"base": {**TINY, "method": "fw", "init_from": "@ce"}, "seeds": [0, 1, 2]}]})
    statuses = run_sweep(path, tmp_path / "out", jobs=2, progress=False, poll_seconds=0)
    assert [s.state for s in statuses] == ["completed"] * 6 and all(s.ok for s in statuses)
    assert fake.max_running == 2
    order = [name for name, *_ in fake.started]
    for s in expand(path):
        for dep in s.depends_on:
            assert order.index(dep) < order.index(s.name)
    for name, cmd, env, running_then in fake.started:
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "4"
        assert env["CUDA_VISIBLE_DEVICES"] in ("0", "1")
        config = json.loads(Path(cmd[cmd.index("--config") + 1]).read_text())
        if config["method"] == "fw":
            assert config["init_from"] == str(tmp_path / "out" / name.replace("_fw_", "_ce_"))
    # two runs at a time get two different GPUs
    pairs = [(a, b) for (a, *_), (b, *_, both) in zip(fake.started, fake.started[1:]) if a in both]
    envs = {name: env for name, _, env, _ in fake.started}
    assert pairs and all(envs[a]["CUDA_VISIBLE_DEVICES"] != envs[b]["CUDA_VISIBLE_DEVICES"] for a, b in pairs)
    # nothing left to do: a second sweep starts nothing
    fake.started.clear()
    assert [s.state for s in run_sweep(path, tmp_path / "out", jobs=2, progress=False)] == ["done"] * 6
    assert fake.started == []


def test_dry_run_writes_nothing(tmp_path, capsys):
    path = _write_grid(tmp_path / "g.json", {"grids": [
        {"base": {**TINY, "method": "ce"}, "seeds": [0]},
        {"base": {**TINY, "method": "fw", "init_from": "@ce"}, "seeds": [0]}]})
    out = tmp_path / "out"
    statuses = run_sweep(path, out, jobs=2, dry_run=True)
    assert [s.state for s in statuses] == ["new", "blocked-by-dependency"]
    assert not out.exists()
    printed = capsys.readouterr().out
    assert "digits_n100_uniform0.5_ce_seed0" in printed and "blocked-by-dependency" in printed


def test_a_locked_run_is_not_started_and_is_reported(tmp_path):
    path = _write_grid(tmp_path / "g.json", {"grids": [
        {"base": {**TINY, "method": "ce"}, "seeds": [0]},
        {"base": {**TINY, "method": "fw", "init_from": "@ce"}, "seeds": [0]}]})
    out = tmp_path / "out"
    ce, fw = (s.name for s in expand(path))
    (out / ce).mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ce / rundir.LOCK).write_text(str(sleeper.pid))
        assert [s.state for s in run_sweep(path, out, dry_run=True)] == ["locked", "blocked-by-dependency"]
        statuses = run_sweep(path, out, jobs=2, progress=False)
        assert [s.state for s in statuses] == ["locked", "blocked"]
        assert str(sleeper.pid) in statuses[0].message and ce in statuses[1].message
        assert not any(s.ok for s in statuses)
        assert [p.name for p in (out / ce).iterdir()] == [rundir.LOCK]
        assert not (out / fw).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_directory_holding_another_run_is_a_conflict(tmp_path):
    path = _write_grid(tmp_path / "g.json", {"base": {**TINY, "method": "ce"}, "seeds": [0]})
    (spec,) = expand(path)
    run = tmp_path / "out" / spec.name
    run.mkdir(parents=True)
    (run / rundir.CONFIG).write_text(json.dumps({**spec.config.to_dict(), "epochs": 5}))
    (status,) = run_sweep(path, tmp_path / "out", progress=False)
    assert status.state == "conflict" and "epochs" in status.message and not status.ok


# -------------------------------------------------------------------------------- real subprocesses
def _interrupt_after_first_epoch(row):
    if row["epoch"] == 1:
        raise KeyboardInterrupt


def _interrupted(spec: RunSpec, out: Path) -> Path:
    run = out / spec.name
    with pytest.raises(KeyboardInterrupt):
        train(spec.resolved_config(out), run, progress=False, on_epoch_end=_interrupt_after_first_epoch)
    assert (run / rundir.LAST).exists() and not (run / rundir.SUMMARY).exists()
    return run


def test_killed_sweep_resumes_and_a_failing_run_does_not_stop_the_rest(tmp_path):
    path = _write_grid(tmp_path / "g.json", {"base": {**TINY, "epochs": 2, "method": "limit-l"}, "seeds": [0, 1]})
    out = tmp_path / "out"
    good, broken = expand(path)
    run = _interrupted(good, out)
    _interrupted(broken, out)
    (out / broken.name / rundir.LAST).write_bytes(b"not a checkpoint")
    assert [s.state for s in run_sweep(path, out, dry_run=True)] == ["resume", "resume"]

    statuses = run_sweep(path, out, jobs=2, progress=False)
    assert [s.state for s in statuses] == ["completed", "failed"]
    assert statuses[0].message == "resumed"
    assert statuses[1].message and not statuses[1].ok  # the last line of the failing run's stderr

    clean = train(good.resolved_config(out), tmp_path / "clean", progress=False)
    resumed = json.loads((run / rundir.SUMMARY).read_text())
    drop = lambda s: {k: v for k, v in s.items() if k != "seconds"}  # noqa: E731
    assert drop(resumed) == drop(clean)
    assert len(rundir.read_metrics(run)) == 2


def test_sweep_runs_all_then_skips_all(tmp_path):
    path = _write_grid(tmp_path / "g.json", {"grids": [
        {"base": {**TINY, "method": "ce"}, "seeds": [0, 1]},
        {"base": {**TINY, "method": "fw", "init_from": "@ce"}, "seeds": [0, 1]}]})
    out = tmp_path / "out"
    statuses = run_sweep(path, out, jobs=2, progress=False)
    assert [s.state for s in statuses] == ["completed"] * 4, [s.message for s in statuses]
    for s in expand(path):
        assert (out / s.name / rundir.SUMMARY).exists()
        saved = Config.load(out / s.name / rundir.CONFIG)
        assert saved == s.resolved_config(out)
    fw = [s for s in expand(path) if s.config.method == "fw"]
    assert all(Config.load(out / s.name / rundir.CONFIG).init_from == str(out / s.depends_on[0]) for s in fw)

    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and ".sweep" not in p.parts}
    again = run_sweep(path, out, jobs=2, progress=False)
    assert [s.state for s in again] == ["done"] * 4
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


# --------------------------------------------------------------------------------------------- submitit
def test_submitit_missing_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    path = _write_grid(tmp_path / "g.json", {"base": {**TINY, "method": "ce"}, "seeds": [0]})
    with pytest.raises(LimitlabError, match="pip install submitit"):
        run_sweep(path, tmp_path / "out", launcher="submitit", progress=False)


def test_submitit_local_executor_resumes_a_run(tmp_path):
    pytest.importorskip("submitit", reason="submitit is an optional launcher: pip install submitit")
    path = _write_grid(tmp_path / "g.json", {"base": {**TINY, "epochs": 2, "method": "ce"}, "seeds": [0]})
    out = tmp_path / "out"
    (spec,) = expand(path)
    run = _interrupted(spec, out)
    (status,) = run_sweep(path, out, launcher="submitit", launcher_options={"cluster": "local", "timeout_min": 5},
                          progress=False)
    assert status.state == "completed", status.message
    assert json.loads((run / rundir.SUMMARY).read_text())["epochs_run"] == 2
    assert (out / sweep.SWEEP_DIR / "submitit").is_dir()
