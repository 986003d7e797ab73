"""Sweeps: a preset (or JSON grid file) expanded into runs, and the runs executed, several at a time.

    specs = expand("mnist-n1000-uniform0.8-limit-g")          # 40 RunSpecs, dependencies first
    statuses = run_sweep("mnist-n1000-uniform0.8", "runs/mnist", jobs=2)
    ok = all(s.ok for s in statuses)

Each run is one ``python -m limitlab train --config FILE --out OUT/NAME --quiet`` subprocess (a run
that was interrupted: ``--out OUT/NAME --resume``), so a crash or a kill affects one run only, and
re-running the same sweep continues where it stopped: complete runs (``summary.json``) are skipped,
interrupted ones (``config.json`` without a summary) resumed, runs in use by a live process (their
``.lock``) left alone. The scheduler is one process, so no two of its workers take the same run, and a
run starts only when the runs it starts from (``"@ce"``) are complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import rundir
from .config import Config
from .errors import LimitlabError
from .presets import CE_RUN, LINK_FIELDS, Preset, load_grid

# Fields that make a run "a method" rather than "a cell": the CE run a run depends on ("@ce") is the
# one that agrees with it on everything else (patience too may differ: LIMIT and "+" runs on CIFAR
# wait longer than their CE run).
METHOD_FIELDS = ("method", "beta", "sample_lambda", "warmup", "grad_noise", "gce_q", "penalty_lambda",
                 "penalty_beta", "transition", "init_from", "q_init_from", "dropout", "weight_decay", "lr",
                 "patience")
# The main hyperparameter of a method: always in its run names, even at its default value.
MAIN_HYPERPARAMETER = {"limit-g": "beta", "limit-l": "beta", "ce-gn": "grad_noise", "gce": "gce_q",
                       "dmi": "lr", "penalize": "penalty_lambda"}
# Hyperparameters shown in run names when they are an axis or differ from the default, in this order.
NAME_FIELDS = ("beta", "sample_lambda", "warmup", "grad_noise", "gce_q", "penalty_lambda", "penalty_beta", "lr",
               "dropout", "weight_decay")
SHORT = {"sample_lambda": "slambda", "grad_noise": "", "gce_q": "q", "penalty_lambda": "lambda",
         "penalty_beta": "pbeta", "weight_decay": "wd", "train_size": "n", "batch_size": "bs", "model": ""}
SWEEP_DIR = ".sweep"      # under the sweep's output folder: config files and logs of the runs
FAILED_STATES = ("failed", "locked", "blocked", "conflict")


@dataclass
class RunSpec:
    """One run of a sweep: its directory name, its config, and the runs it needs first.

    ``links`` maps a Config field (``init_from``/``q_init_from``) to the run whose directory it names;
    ``config`` keeps the ``"@ce"`` placeholder, :meth:`resolved_config` fills in the path."""

    name: str
    config: Config
    depends_on: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)

    def resolved_config(self, out_dir: str | Path) -> Config:
        root = Path(os.path.abspath(out_dir))
        return dataclasses.replace(self.config, **{f: str(root / run) for f, run in self.links.items()})


@dataclass
class RunStatus:
    """What happened to (or, in a dry run, what would happen to) one run.

    state: ``done`` (complete before the sweep), ``completed`` (ran now), ``failed``, ``locked`` (in use
    by another live process), ``blocked`` (a run it depends on failed or is locked), ``conflict`` (its
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


# ------------------------------------------------------------------------------------------- expand
def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _safe(part: str) -> str:
    """Letters, digits, '.', '+' and '-' only: '_' separates the parts of a name."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", part).strip("-") or "x"


def _noise_part(noise: str) -> str:
    kind, _, arg = noise.partition(":")
    if not arg:
        return kind
    if kind == "matrix":
        arg = Path(arg).stem
    return f"{kind}{'-' if kind[-1:].isdigit() else ''}{arg}"


def _field_part(name: str, value) -> str:
    if name == "grad_noise":
        return str(value).replace(":", "")
    if isinstance(value, bool):
        short = SHORT.get(name, name.replace("_", "-"))
        return short if value else f"no-{short}"
    return f"{SHORT.get(name, name.replace('_', '-'))}{_fmt(value)}"


def run_name(config: Config, axes=()) -> str:
    """A readable directory name from the settings that define and vary a run, e.g.
    ``mnist_n1000_uniform0.8_limit-g_beta10_seed0`` (``+``: the q-network starts from a CE run)."""
    defaults = Config()
    parts = [config.dataset, f"n{config.train_size}" if config.train_size is not None else "nall",
             _noise_part(config.noise), config.method + ("+" if config.q_init_from else "")]
    for f in NAME_FIELDS:
        value = getattr(config, f)
        if f in axes or f == MAIN_HYPERPARAMETER.get(config.method) or value != getattr(defaults, f):
            parts.append(_field_part(f, value))
    extra = [f for f in axes if f not in NAME_FIELDS and f not in ("dataset", "train_size", "noise", "method")]
    parts += [_field_part(f, getattr(config, f)) for f in extra]
    return "_".join(_safe(p) for p in parts)


def _ce_key(config: Config) -> tuple:
    d = config.to_dict()
    return tuple((k, v) for k, v in d.items() if k not in METHOD_FIELDS)


def _is_plain_ce(config: Config) -> bool:
    return (config.method == "ce" and not config.init_from and not config.q_init_from and not config.transition
            and config.dropout == 0 and config.weight_decay == 0)


def _ce_reference(config: Config) -> Config:
    """The CE run a run with ``"@ce"`` starts from, when the preset does not list it: the same run with
    the method's own settings at their defaults."""
    defaults = Config()
    return dataclasses.replace(config, method="ce",
                               **{f: getattr(defaults, f) for f in METHOD_FIELDS if f not in ("method", "patience")})


def expand(preset: str | Path | Preset) -> list[RunSpec]:
    """The runs of a preset (name, JSON grid file or Preset), in a deterministic order with every run
    after the runs it depends on. Identical configs listed twice are one run."""
    preset = load_grid(preset)
    configs: list[Config] = []
    axes_of: list[set] = []
    seen: dict[str, int] = {}
    for grid in preset.grids:
        keys = list(grid.axes)
        for combo in itertools.product(*(grid.axes[k] for k in keys)):
            for seed in grid.seeds:
                values = {**grid.base, **dict(zip(keys, combo)), "seed": seed}
                try:
                    config = Config.from_dict(values)
                    config.validate()
                except LimitlabError as e:
                    raise LimitlabError(f"preset {preset.name}: {e}") from None
                except TypeError as e:
                    raise LimitlabError(f"preset {preset.name}: a value has the wrong type ({e})") from None
                for f in LINK_FIELDS:
                    value = getattr(config, f)
                    if isinstance(value, str) and value.startswith("@") and value != CE_RUN:
                        raise LimitlabError(f"preset {preset.name}: {f} {value!r} is not a known dependency; "
                                            f"use {CE_RUN!r} (the CE run of the same cell and seed) or a directory")
                    if value == CE_RUN and config.method == "ce":
                        raise LimitlabError(f"preset {preset.name}: a ce run cannot start from {CE_RUN!r} (itself)")
                key = json.dumps(config.to_dict(), sort_keys=True)
                if key in seen:
                    axes_of[seen[key]] |= set(keys)
                    continue
                seen[key] = len(configs)
                configs.append(config)
                axes_of.append(set(keys))

    # "@ce": the plain CE run of the same cell and seed, from the preset or added to it
    candidates: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        if _is_plain_ce(c):
            candidates.setdefault(_ce_key(c), []).append(i)
    links: dict[int, dict[str, int]] = {}
    for i in range(len(configs)):
        c = configs[i]
        wanted = [f for f in LINK_FIELDS if getattr(c, f) == CE_RUN]
        if not wanted:
            continue
        found = candidates.get(_ce_key(c), [])
        if len(found) > 1:  # several CE settings (e.g. an lr axis): the one at the default lr
            found = [j for j in found if configs[j].lr == Config().lr] or found
        if len(found) > 1:
            raise LimitlabError(f"preset {preset.name}: {CE_RUN!r} of a {c.method} run (seed {c.seed}) matches "
                                f"{len(found)} CE runs; keep one CE setting per cell")
        if not found:
            ref = _ce_reference(c)
            key = json.dumps(ref.to_dict(), sort_keys=True)
            if key not in seen:
                seen[key] = len(configs)
                configs.append(ref)
                axes_of.append(set())
            found = [seen[key]]
            candidates.setdefault(_ce_key(ref), []).append(found[0])
        links[i] = {f: found[0] for f in wanted}

    names = _unique_names(configs, axes_of)
    specs = [RunSpec(names[i], c, sorted({names[j] for j in links.get(i, {}).values()}),
                     {f: names[j] for f, j in links.get(i, {}).items()}) for i, c in enumerate(configs)]
    return _dependencies_first(specs)


def _unique_names(configs: list[Config], axes_of: list[set]) -> list[str]:
    names = [run_name(c, a) for c, a in zip(configs, axes_of)]
    groups: dict[tuple, list[int]] = {}
    for i, (n, c) in enumerate(zip(names, configs)):
        groups.setdefault((n, c.seed), []).append(i)
    for (base, _), members in groups.items():
        if len(members) == 1:
            continue
        # two different configs under one name: add the fields that tell them apart
        dicts = [configs[i].to_dict() for i in members]
        differing = [f for f in dicts[0] if f != "seed" and len({json.dumps(d[f]) for d in dicts}) > 1]
        for i, d in zip(members, dicts):
            names[i] = "_".join([base, *(_safe(_field_part(f, d[f])) for f in differing)])
    if len({(n, c.seed) for n, c in zip(names, configs)}) < len(names):
        for i, c in enumerate(configs):
            digest = hashlib.sha1(json.dumps(c.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
            names[i] = f"{names[i]}_{digest}"
    return [f"{n}_seed{c.seed}" for n, c in zip(names, configs)]


def _dependencies_first(specs: list[RunSpec]) -> list[RunSpec]:
    by_name = {s.name: s for s in specs}
    out: list[RunSpec] = []
    done: set[str] = set()

    def visit(spec: RunSpec, path: tuple):
        if spec.name in done:
            return
        if spec.name in path:
            raise LimitlabError(f"the runs {' -> '.join(path)} depend on each other in a cycle")
        for dep in spec.depends_on:
            visit(by_name[dep], (*path, spec.name))
        done.add(spec.name)
        out.append(spec)

    for s in specs:
        visit(s, ())
    return out


# ------------------------------------------------------------------------------------- run states
def _lock_holder(run: Path) -> int | None:
    """The pid of the live process that holds the run's lock (rundir.RunLock), else None."""
    path = run / rundir.LOCK
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid and pid != os.getpid() and rundir._pid_alive(pid):
        return pid
    return None


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
            if state == "resume":
                pid = _lock_holder(run)
                if pid:
                    return "locked", f"in use by process {pid}"
            return state, ""
    pid = _lock_holder(run)
    if pid:
        return "locked", f"in use by process {pid}"
    if run.exists() and (not run.is_dir() or any(p.name != rundir.LOCK for p in run.iterdir())):
        return "conflict", f"{run} exists and is not a limitlab run directory; remove it or use another output folder"
    return "new", ""


# --------------------------------------------------------------------------------------- commands
def build_command(spec: RunSpec, run_dir: str | Path, resume: bool, config_file: str | Path | None = None) -> list[str]:
    """The ``limitlab train`` command of one run. A new run reads its config from ``config_file`` (JSON,
    Config.to_dict); an interrupted one continues from its own config.json (``--resume``)."""
    cmd = [sys.executable, "-m", "limitlab", "train"]
    if resume:
        return cmd + ["--out", str(run_dir), "--resume", "--quiet"]
    if config_file is None:
        raise ValueError("a new run needs its config file")
    return cmd + ["--config", str(config_file), "--out", str(run_dir), "--quiet"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _visible_gpus() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    n = torch.cuda.device_count()
    if n == 0:
        return []
    given = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return given[:n] if len(given) >= n else [str(i) for i in range(n)]


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _run_logged(cmd: list[str], env_overrides: dict, out_path: str, err_path: str) -> int:
    """Run ``cmd`` with its output in two files (what a submitit job executes)."""
    env = dict(os.environ, **env_overrides)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        return subprocess.run(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL).returncode


class _LocalLauncher:
    def start(self, name, cmd, env_overrides, out_path, err_path):
        env = dict(os.environ, **env_overrides)
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            return subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def poll(self, proc) -> tuple[int, str] | None:
        rc = proc.poll()
        return None if rc is None else (rc, "")

    def stop(self, proc) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _SubmititLauncher:
    """The same commands as submitit jobs (Slurm, or ``cluster="local"``). ``options`` go to
    ``AutoExecutor.update_parameters`` (e.g. timeout_min, slurm_partition, gpus_per_node, cpus_per_task);
    ``cluster`` to ``AutoExecutor``."""

    def __init__(self, folder: Path, options: dict | None):
        try:
            import submitit
        except ImportError:
            raise LimitlabError("launcher 'submitit' needs the submitit package: pip install submitit") from None
        options = dict(options or {})
        cluster = options.pop("cluster", None)
        options.setdefault("timeout_min", 24 * 60)  # submitit's local default (2 minutes) would kill runs
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
            self.executor.update_parameters(**options)
        except (ValueError, TypeError, RuntimeError) as e:
            raise LimitlabError(f"submitit does not accept the launcher options {options}: {e}") from None

    def start(self, name, cmd, env_overrides, out_path, err_path):
        self.executor.update_parameters(name=name)
        return self.executor.submit(_run_logged, cmd, env_overrides, str(out_path), str(err_path))

    def poll(self, job) -> tuple[int, str] | None:
        if not job.done():
            return None
        try:
            return int(job.result()), ""
        except Exception as e:  # the job itself failed (killed, timed out, node lost)
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            return -1, lines[-1] if lines else type(e).__name__

    def stop(self, job) -> None:
        try:
            job.cancel(check=False)
        except Exception:
            pass


# -------------------------------------------------------------------------------------------- run
def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def run_sweep(preset: str | Path | Preset, out_dir: str | Path, jobs: int = 1, dry_run: bool = False,
              launcher: str = "local", progress: bool = True, launcher_options: dict | None = None,
              poll_seconds: float = 0.2) -> list[RunStatus]:
    """Run every run of ``preset`` into ``out_dir/<run name>``, up to ``jobs`` at a time; returns one
    RunStatus per run, in the order of :func:`expand`. A caller (the CLI) exits non-zero unless
    ``all(s.ok for s in statuses)``.

    Complete runs are skipped, interrupted ones resumed, locked ones (a live process holds them) and
    directories holding another run are reported and left alone; a failing run is reported with the last
    line of its stderr and the others go on; a run whose dependency failed is reported as blocked.
    Locally, each run gets cores // jobs CPU threads (OMP/MKL_NUM_THREADS) and, on a machine with GPUs,
    one GPU (CUDA_VISIBLE_DEVICES), shared round-robin when jobs exceed the GPUs. ``launcher="submitit"``
    submits the same commands through submitit (``launcher_options``: see _SubmititLauncher).
    ``dry_run`` prints each run's state (done / resume / new / blocked-by-dependency / locked /
    conflict) and writes nothing."""
    preset = load_grid(preset)
    if jobs < 1:
        raise LimitlabError(f"jobs must be at least 1, not {jobs}")
    if launcher not in ("local", "submitit"):
        raise LimitlabError(f"unknown launcher {launcher!r}; use local or submitit")
    specs = expand(preset)
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise LimitlabError(f"the sweep folder {out_dir} is a file; choose another folder")
    initial = {s.name: run_state(s, out_dir) for s in specs}
    if dry_run:
        return _dry_run(specs, initial, out_dir)

    statuses: dict[str, RunStatus] = {}
    complete: set[str] = set()
    bad: set[str] = set()
    pending: list[RunSpec] = []
    for s in specs:
        state, message = initial[s.name]
        if state in ("new", "resume"):
            pending.append(s)
            continue
        statuses[s.name] = RunStatus(s.name, out_dir / s.name, state,
                                     message or ("already complete" if state == "done" else ""))
        (complete if state == "done" else bad).add(s.name)
        if state != "done":
            print(f"sweep: {s.name}: {state}: {message}", file=sys.stderr, flush=True)

    logs = out_dir / SWEEP_DIR
    runner = None
    if pending:
        (logs / "configs").mkdir(parents=True, exist_ok=True)
        (logs / "logs").mkdir(parents=True, exist_ok=True)
        runner = _SubmititLauncher(logs / "submitit", launcher_options) if launcher == "submitit" else _LocalLauncher()
    gpus = _visible_gpus() if launcher == "local" and pending else []
    threads = str(max(1, _cores() // jobs))
    package_root = str(Path(__file__).resolve().parents[1])  # children run this limitlab
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    running: dict[str, tuple] = {}  # name -> (handle, spec, started, gpu, resumed)
    gpu_load = {g: 0 for g in gpus}
    total, started_count = len(pending), 0
    _say(progress and total > 0, f"sweep {preset.name}: {total} run(s) to train, {len(complete)} already complete, "
                                 f"{jobs} at a time -> {out_dir}")
    try:
        while pending or running:
            for s in list(pending):  # a run whose dependency failed will not run
                failed = [d for d in s.depends_on if d in bad]
                if failed:
                    pending.remove(s)
                    bad.add(s.name)
                    statuses[s.name] = RunStatus(s.name, out_dir / s.name, "blocked",
                                                 f"it starts from {failed[0]}, which did not complete")
                    print(f"sweep: {s.name}: blocked: {failed[0]} did not complete", file=sys.stderr, flush=True)
            for s in list(pending):
                if len(running) >= jobs:
                    break
                if not all(d in complete for d in s.depends_on):
                    continue
                pending.remove(s)
                run = out_dir / s.name
                state, message = run_state(s, out_dir)  # again: another process may have taken it meanwhile
                if state not in ("new", "resume"):
                    statuses[s.name] = RunStatus(s.name, run, state, message or "already complete")
                    (complete if state == "done" else bad).add(s.name)
                    continue
                resume = state == "resume"
                config_file = logs / "configs" / f"{s.name}.json"
                if not resume:
                    if (run / rundir.LOCK).exists():  # the stale lock of a dead process, nothing else
                        (run / rundir.LOCK).unlink(missing_ok=True)
                    rundir.write_json(config_file, s.resolved_config(out_dir).to_dict())
                cmd = build_command(s, run, resume, config_file)
                env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": pythonpath}
                gpu = None
                if gpus and not s.config.device.startswith("cpu"):
                    gpu = min(gpus, key=lambda g: gpu_load[g])
                    gpu_load[gpu] += 1
                    env["CUDA_VISIBLE_DEVICES"] = gpu
                started_count += 1
                _say(progress, f"[{started_count}/{total}] {'resume' if resume else 'start'} {s.name}"
                               + (f" on GPU {gpu}" if gpu is not None else ""))
                handle = runner.start(s.name, cmd, env, logs / "logs" / f"{s.name}.out", logs / "logs" / f"{s.name}.err")
                running[s.name] = (handle, s, time.time(), gpu, resume)
            if not running and pending:
                if any(d in bad for s in pending for d in s.depends_on):
                    continue  # reported as blocked at the top of the loop
                # nothing can start: every remaining run waits for a run that is not in this sweep's hands
                for s in pending:
                    bad.add(s.name)
                    statuses[s.name] = RunStatus(s.name, out_dir / s.name, "blocked",
                                                 f"it waits for {', '.join(d for d in s.depends_on if d not in complete)}")
                pending = []
                break
            time.sleep(poll_seconds)
            for name, (handle, _spec, t0, gpu, resume) in list(running.items()):
                result = runner.poll(handle)
                if result is None:
                    continue
                del running[name]
                if gpu is not None:
                    gpu_load[gpu] -= 1
                rc, message = result
                seconds = time.time() - t0
                run = out_dir / name
                if rc == 0 and (run / rundir.SUMMARY).exists():
                    complete.add(name)
                    statuses[name] = RunStatus(name, run, "completed", "resumed" if resume else "", seconds)
                    _say(progress, f"done {name} in {seconds:.0f}s")
                else:
                    bad.add(name)
                    why = message or _last_line(logs / "logs" / f"{name}.err") or f"exit code {rc}"
                    statuses[name] = RunStatus(name, run, "failed", why, seconds)
                    print(f"sweep: FAILED {name}: {why} (log: {logs / 'logs' / (name + '.err')})",
                          file=sys.stderr, flush=True)
    finally:
        for handle, *_ in running.values():
            runner.stop(handle)
    result = [statuses[s.name] for s in specs]
    if progress or any(not r.ok for r in result):
        counts = {}
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
