"""How a sweep's runs are started: the ``limitlab train`` command of a run, and the launchers that
execute it — local subprocesses, or submitit jobs (SLURM) — with their CPU threads and GPUs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from ..errors import LimitlabError
from .expand import RunSpec


def build_command(spec: RunSpec, run_dir: str | Path, resume: bool, config_file: str | Path | None = None) -> list[str]:
    """The ``limitlab train`` command of one run. A new run reads its config from ``config_file`` (JSON,
    Config.to_dict); an interrupted one continues from its own config.json (``--resume``)."""
    cmd = [sys.executable, "-m", "limitlab", "train"]
    if resume:
        return cmd + ["--out", str(run_dir), "--resume", "--quiet"]
    if config_file is None:
        raise ValueError("a new run needs its config file")
    return cmd + ["--config", str(config_file), "--out", str(run_dir), "--quiet"]


def parse_launcher_options(items: list[str]) -> dict:
    """``--launcher-option KEY=VALUE`` strings as a dict for :class:`SubmititLauncher`; a whole number
    becomes an int and a decimal a float (``timeout_min=600``), anything else stays text."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LimitlabError(f"--launcher-option {item!r} is not KEY=VALUE; write e.g. --launcher-option "
                                "cluster=slurm or --launcher-option timeout_min=600")
        options[key.strip()] = _number_or_text(value.strip())
    return options


def _number_or_text(value: str):
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        if math.isfinite(number):
            return number
    return value


def cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """The CUDA devices visible to this process, as values for ``CUDA_VISIBLE_DEVICES``."""
    try:
        import torch
    except ImportError:
        return []
    n = torch.cuda.device_count()
    if n == 0:
        return []
    given = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return given[:n] if len(given) >= n else [str(i) for i in range(n)]


def last_line(path: Path) -> str:
    """The last non-empty line of a log file ("" when there is none or it cannot be read)."""
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


class LocalLauncher:
    """Runs each sweep run as a local subprocess, its output in a log file."""

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


class SubmititLauncher:
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
