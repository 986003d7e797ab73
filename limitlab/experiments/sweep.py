"""Sweeps: the runs of a preset (see :mod:`limitlab.experiments.expand`) executed, several at a time.

    statuses = run_sweep("mnist-n1000-uniform0.8", "runs/mnist", jobs=2)
    ok = all(s.ok for s in statuses)

Each run is one ``python -m limitlab train --config FILE --out OUT/NAME --quiet`` subprocess (a run
that was interrupted: ``--out OUT/NAME --resume``), so a crash or a kill affects one run only, and
re-running the same sweep continues where it stopped: complete runs (``summary.json``) are skipped,
interrupted ones (``config.json`` without a summary) resumed, runs in use by a live process (their
``.lock``) left alone. The scheduler takes a run's lock before it starts the run's process and hands
it over to that process (:mod:`limitlab.runlock`), so two sweeps on one folder never start the same
run: each reports the runs the other took as ``taken``. A run starts only when the runs it starts
from (``"@ce"``) are complete.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .. import rundir, runlock
from ..errors import LimitlabError
from .expand import RunSpec, expand
from .launchers import LocalLauncher, SubmititLauncher, build_command, cores, last_line, visible_gpus
from .presets import LINK_FIELDS, Preset, load_grid

SWEEP_DIR = ".sweep"      # under the sweep's output folder: config files and logs of the runs
FAILED_STATES = ("failed", "locked", "taken", "blocked", "conflict")


@dataclass
class RunStatus:
    """What happened to (or, in a dry run, what would happen to) one run.

    state: ``done`` (complete before the sweep), ``completed`` (ran now), ``failed``, ``locked`` (in use
    by another live process), ``taken`` (by another sweep on the same folder, which runs it), ``blocked``
    (a run it depends on failed or is locked), ``conflict`` (its
    directory holds a different run); in a dry run also ``new``, ``resume`` and ``blocked-by-dependency``
    (waits for runs that are not complete yet)."""

    name: str
    run_dir: Path
    state: str
    message: str = ""
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.state not in FAILED_STATES


# ------------------------------------------------------------------------------------- run states
def _config_differences(saved: dict, wanted: dict) -> list[str]:
    out = []
    for k, v in wanted.items():
        s = saved.get(k)
        if k in LINK_FIELDS and s is not None and v is not None:
            same = Path(s).name == Path(v).name  # a moved sweep folder still matches
        else:
            same = s == v
        if not same:
            out.append(f"{k} {s!r} instead of {v!r}")
    return out


def run_state(spec: RunSpec, out_dir: str | Path) -> tuple[str, str]:
    """(state, message) of a run directory before the sweep touches it: done, resume, new, locked or
    conflict (the directory holds another run or other files)."""
    run = Path(out_dir) / spec.name
    wanted = spec.resolved_config(out_dir).to_dict()
    for file, state in ((rundir.SUMMARY, "done"), (rundir.CONFIG, "resume")):
        if (run / file).exists():
            try:
                saved = json.loads((run / rundir.CONFIG).read_text())
            except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
                return "conflict", f"its {rundir.CONFIG} cannot be read ({e}); remove {run} to start it again"
            differences = _config_differences(saved, wanted)
            if differences:
                return "conflict", (f"{run} holds a different run ({'; '.join(differences[:3])}); remove it or "
                                    "use another output folder")
            if state == "resume" and runlock.lock_holder(run):
                return _locked(run)
            return state, ""
    if runlock.lock_holder(run):
        return _locked(run)
    if run.exists() and (not run.is_dir() or any(not runlock.is_lock_file(p.name) for p in run.iterdir())):
        return "conflict", f"{run} exists and is not a limitlab run directory; remove it or use another output folder"
    return "new", ""


def _locked(run: Path, pid: int | None = None) -> tuple[str, str]:
    """(state, message) of a run whose lock a live process holds: ``taken`` by another sweep, else ``locked``."""
    pid = pid or runlock.lock_holder(run)
    if runlock.held_by_a_sweep(run):
        return "taken", f"taken by another sweep (process {pid}), which runs it"
    return "locked", f"in use by process {pid}"


# -------------------------------------------------------------------------------------------- run
def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _warn(text: str) -> None:
    print(f"sweep: {text}", file=sys.stderr, flush=True)


@dataclass
class _Running:
    handle: object          # a Popen or a submitit job
    spec: RunSpec
    started: float
    gpu: str | None
    resumed: bool


class Scheduler:
    """The state of one sweep while it runs: which runs wait, run, completed or failed; it starts
    runs whose dependencies are complete, up to ``jobs`` at a time, and collects finished ones."""

    def __init__(self, pending: list[RunSpec], out_dir: Path, jobs: int, launcher, gpus: list[str], progress: bool,
                 threads: int | None = None, runs_per_gpu: int | None = None):
        self.out_dir, self.jobs, self.launcher, self.progress = out_dir, jobs, launcher, progress
        self.runs_per_gpu = runs_per_gpu
        self.statuses: dict[str, RunStatus] = {}
        self.complete: set[str] = set()
        self.bad: set[str] = set()
        self.pending: list[RunSpec] = list(pending)
        self.total = len(pending)
        self.running: dict[str, _Running] = {}
        self.created: set[str] = set()    # run folders this sweep made (removed again if left empty)
        self.gpu_load = {g: 0 for g in gpus}
        self.started = 0
        self.logs = out_dir / SWEEP_DIR
        threads = str(threads or max(1, cores() // jobs))
        package_root = str(Path(__file__).resolve().parents[2])  # children run this limitlab
        pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        self.env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": pythonpath}

    def record(self, name: str, state: str, message: str = "", seconds: float | None = None) -> None:
        self.statuses[name] = RunStatus(name, self.out_dir / name, state, message, seconds)
        (self.complete if state in ("done", "completed") else self.bad).add(name)

    def block_failed_dependents(self) -> None:
        """A run whose dependency failed will not run."""
        for s in list(self.pending):
            failed = [d for d in s.depends_on if d in self.bad]
            if failed:
                self.pending.remove(s)
                self.record(s.name, "blocked", f"it starts from {failed[0]}, which did not complete")
                _warn(f"{s.name}: blocked: {failed[0]} did not complete")

    def start_ready(self) -> None:
        """Start pending runs whose dependencies are complete, while fewer than ``jobs`` run."""
        for s in list(self.pending):
            if len(self.running) >= self.jobs:
                break
            if not all(d in self.complete for d in s.depends_on):
                continue
            if (self.runs_per_gpu and self.gpu_load and not s.config.device.startswith("cpu")
                    and min(self.gpu_load.values()) >= self.runs_per_gpu):
                break  # every GPU holds runs_per_gpu runs: wait until one ends
            self.pending.remove(s)
            run = self.out_dir / s.name
            state, message = run_state(s, self.out_dir)  # again: another process may have taken it meanwhile
            existed = run.exists()
            holder = runlock.claim(run) if state in ("new", "resume") else None  # the run is ours from here on
            if holder:
                state, message = _locked(run, holder)
            if state not in ("new", "resume"):
                self.record(s.name, state, message or "already complete")
                if state != "done":
                    _warn(f"{s.name}: {state}: {message}")
                continue
            if not existed:
                self.created.add(s.name)
            try:
                self._start(s, run, resumed=state == "resume")
            except BaseException:
                self._release(s.name)
                raise

    def _release(self, name: str) -> None:
        """Give up the lock of a run whose process ended (it normally removed the lock itself), and the
        run's folder if this sweep made it and nothing was written into it."""
        run = self.out_dir / name
        runlock.release(run)
        if name in self.created:
            self.created.discard(name)
            try:
                run.rmdir()  # only when empty
            except OSError:
                pass

    def _start(self, s: RunSpec, run: Path, resumed: bool) -> None:
        config_file = self.logs / "configs" / f"{s.name}.json"
        if not resumed:
            rundir.write_json(config_file, s.resolved_config(self.out_dir).to_dict())
        env = {**self.env, runlock.LOCK_HANDOFF: str(os.getpid())}  # the run's process takes our lock over
        gpu = None
        if self.gpu_load and not s.config.device.startswith("cpu"):
            gpu = min(self.gpu_load, key=lambda g: self.gpu_load[g])
            self.gpu_load[gpu] += 1
            env["CUDA_VISIBLE_DEVICES"] = gpu
        self.started += 1
        _say(self.progress, f"[{self.started}/{self.total}] {'resume' if resumed else 'start'} {s.name}"
                            + (f" on GPU {gpu}" if gpu is not None else ""))
        handle = self.launcher.start(s.name, build_command(s, run, resumed, config_file), env,
                                     self.logs / "logs" / f"{s.name}.out", self.logs / "logs" / f"{s.name}.err")
        self.running[s.name] = _Running(handle, s, time.time(), gpu, resumed)

    def stuck(self) -> bool:
        """Nothing runs and nothing can start: the remaining runs wait for runs outside this sweep's
        hands (they are reported as blocked)."""
        if self.running or not self.pending:
            return False
        if any(d in self.bad for s in self.pending for d in s.depends_on):
            return False  # reported as blocked by block_failed_dependents
        for s in self.pending:
            self.record(s.name, "blocked",
                        f"it waits for {', '.join(d for d in s.depends_on if d not in self.complete)}")
        self.pending = []
        return True

    def collect_finished(self) -> None:
        for name, r in list(self.running.items()):
            result = self.launcher.poll(r.handle)
            if result is None:
                continue
            del self.running[name]
            self._release(name)
            if r.gpu is not None:
                self.gpu_load[r.gpu] -= 1
            rc, message = result
            seconds = time.time() - r.started
            if rc == 0 and (self.out_dir / name / rundir.SUMMARY).exists():
                self.record(name, "completed", "resumed" if r.resumed else "", seconds)
                _say(self.progress, f"done {name} in {seconds:.0f}s")
            else:
                err = self.logs / "logs" / f"{name}.err"
                why = message or last_line(err) or f"exit code {rc}"
                self.record(name, "failed", why, seconds)
                _warn(f"FAILED {name}: {why} (log: {err})")

    def stop_all(self) -> None:
        for name, r in self.running.items():
            self.launcher.stop(r.handle)
            self._release(name)


def run_sweep(preset: str | Path | Preset, out_dir: str | Path, jobs: int | None = 1, dry_run: bool = False,
              launcher: str = "local", progress: bool = True, launcher_options: dict | None = None,
              poll_seconds: float = 0.2, threads: int | None = None, runs_per_gpu: int | None = None,
              ) -> list[RunStatus]:
    """Run every run of ``preset`` into ``out_dir/<run name>``, up to ``jobs`` at a time; returns one
    RunStatus per run, in the order of :func:`~limitlab.experiments.expand.expand`. A caller (the
    CLI) exits non-zero unless ``all(s.ok for s in statuses)``.

    Complete runs are skipped, interrupted ones resumed, locked ones (a live process holds them) and
    directories holding another run are reported and left alone; a failing run is reported with the last
    line of its stderr and the others go on; a run whose dependency failed is reported as blocked.
    Locally, each run gets ``threads`` (default: cores // jobs) CPU threads (OMP/MKL_NUM_THREADS) and, on a machine with GPUs,
    one GPU (CUDA_VISIBLE_DEVICES), shared round-robin when jobs exceed the GPUs. ``runs_per_gpu=N`` lets
    each GPU hold up to N runs at once (small models use a fraction of a modern GPU) and no more; then
    ``jobs=None`` means N × the visible GPUs (without GPUs, or without runs_per_gpu, None means 1).
    ``launcher="submitit"``
    submits the same commands through submitit (``launcher_options``: see SubmititLauncher).
    ``dry_run`` prints each run's state (done / resume / new / blocked-by-dependency / locked /
    conflict) and writes nothing."""
    preset = load_grid(preset)
    if jobs is not None and jobs < 1:
        raise LimitlabError(f"jobs must be at least 1, not {jobs}")
    if runs_per_gpu is not None and runs_per_gpu < 1:
        raise LimitlabError(f"--runs-per-gpu must be at least 1, not {runs_per_gpu}")
    if threads is not None and threads < 1:
        raise LimitlabError(f"threads must be at least 1, not {threads}")
    if launcher not in ("local", "submitit"):
        raise LimitlabError(f"unknown launcher {launcher!r}; use local or submitit")
    specs = expand(preset)
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise LimitlabError(f"the sweep folder {out_dir} is a file; choose another folder")
    initial = {s.name: run_state(s, out_dir) for s in specs}
    if dry_run:
        return _dry_run(specs, initial, out_dir)

    to_run = [s for s in specs if initial[s.name][0] in ("new", "resume")]
    runner = None
    if to_run:
        logs = out_dir / SWEEP_DIR
        (logs / "configs").mkdir(parents=True, exist_ok=True)
        (logs / "logs").mkdir(parents=True, exist_ok=True)
        runner = SubmititLauncher(logs / "submitit", launcher_options) if launcher == "submitit" else LocalLauncher()
    gpus = visible_gpus() if launcher == "local" and to_run else []
    if jobs is None:
        jobs = runs_per_gpu * len(gpus) if runs_per_gpu and gpus else 1
    sched = Scheduler(to_run, out_dir, jobs, runner, gpus, progress, threads, runs_per_gpu)
    for s in specs:
        state, message = initial[s.name]
        if state not in ("new", "resume"):
            sched.record(s.name, state, message or ("already complete" if state == "done" else ""))
            if state != "done":
                _warn(f"{s.name}: {state}: {message}")
    _say(progress and to_run, f"sweep {preset.name}: {len(to_run)} run(s) to train, {len(sched.complete)} already "
                              f"complete, {jobs} at a time -> {out_dir}")
    try:
        while sched.pending or sched.running:
            sched.block_failed_dependents()
            sched.start_ready()
            if sched.stuck():
                break
            time.sleep(poll_seconds)
            sched.collect_finished()
    finally:
        sched.stop_all()
    result = [sched.statuses[s.name] for s in specs]
    if progress or any(not r.ok for r in result):
        counts: dict[str, int] = {}
        for r in result:
            counts[r.state] = counts.get(r.state, 0) + 1
        print(f"sweep {preset.name}: " + ", ".join(f"{n} {state}" for state, n in counts.items()),
              file=sys.stderr, flush=True)
    return result


def _dry_run(specs: list[RunSpec], initial: dict, out_dir: Path) -> list[RunStatus]:
    out = []
    for s in specs:
        state, message = initial[s.name]
        if state in ("new", "resume"):
            waiting = [d for d in s.depends_on if initial[d][0] != "done"]
            if waiting:
                message = f"{state} after {', '.join(waiting)}"
                state = "blocked-by-dependency"
        out.append(RunStatus(s.name, out_dir / s.name, state, message))
    width = max((len(r.name) for r in out), default=0)
    for r in out:
        print(f"{r.name:<{width}}  {r.state}" + (f"  ({r.message})" if r.message else ""))
    counts = {}
    for r in out:
        counts[r.state] = counts.get(r.state, 0) + 1
    print(f"{len(out)} runs: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
    return out
