"""The run directory contract (DESIGN.md): file names, atomic writes, and a lock so that two
processes never write the same run.

    config.json  metrics.jsonl  noisy_labels.npz  checkpoints/last.pt  checkpoints/best.pt  summary.json
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from .errors import LimitlabError

CONFIG, METRICS, NOISY_LABELS, SUMMARY, LOCK = "config.json", "metrics.jsonl", "noisy_labels.npz", "summary.json", ".lock"
LAST, BEST = "checkpoints/last.pt", "checkpoints/best.pt"


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: a killed process never leaves half
    a file. (No fsync: it protects against power loss, not a killed run, and costs seconds per epoch.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give results the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def save_torch(path: Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_metrics(run: Path) -> list[dict]:
    path = Path(run) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run: Path, rows: list[dict]) -> None:
    atomic_write_bytes(Path(run) / METRICS, "".join(json.dumps(r) + "\n" for r in rows).encode())


def append_metrics(run: Path, row: dict) -> None:
    with open(Path(run) / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(run: Path) -> int | None:
    """The pid of the live process (other than this one) that holds ``run``'s lock, else None."""
    try:
        pid = int((Path(run) / LOCK).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid and pid != os.getpid() and _pid_alive(pid):
        return pid
    return None


class RunLock:
    """An exclusive lock file in the run directory, held while a process writes the run.

    A lock left by a process that no longer exists (a killed run) is taken over.
    """

    def __init__(self, run: Path):
        self.path = Path(run) / LOCK

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = lock_holder(self.path.parent)
                if pid:
                    raise LimitlabError(f"the run directory {self.path.parent} is in use by process {pid}; "
                                        "wait for it to finish or choose another --out") from None
                self.path.unlink(missing_ok=True)  # stale lock of a dead process
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise LimitlabError(f"cannot lock the run directory {self.path.parent}; choose another --out")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def prepare_run_dir(run: Path, resume: bool, overwrite: bool) -> None:
    """Check that ``run`` may be written, before anything is written.

    A fresh run needs a missing or empty directory; ``overwrite`` clears an earlier run directory
    (one that has a config.json) and refuses anything else; ``resume`` needs an earlier run.
    """
    run = Path(run)
    if resume and overwrite:
        raise LimitlabError("--resume and --overwrite contradict each other; choose one")
    if resume:
        if not (run / CONFIG).exists():
            raise LimitlabError(f"nothing to resume in {run}: it has no {CONFIG}; drop --resume to start a new run")
        return
    if run.exists() and not run.is_dir():
        raise LimitlabError(f"--out {run} is a file, not a directory; choose another --out")
    if run.exists() and any(run.iterdir()):
        if not overwrite:
            raise LimitlabError(f"--out {run} is not empty; pass --resume to continue that run, "
                                "--overwrite to replace it, or choose another --out")
        if not (run / CONFIG).exists():
            raise LimitlabError(f"--out {run} is not empty and is not a limitlab run directory; "
                                "refusing to delete it, choose another --out")
        if (run / LOCK).exists():
            with RunLock(run):  # raises if another process is writing it
                pass
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
