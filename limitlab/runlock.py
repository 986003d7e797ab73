"""The lock of a run directory: one process at a time writes a run. The lock is a file ``.lock`` in the
run directory holding the pid of its holder (a lock of a dead process is taken over). A sweep takes a
run's lock before it starts the run's process (:func:`claim`), so that two sweeps on one folder never
start the same run, and hands it to that process (LOCK_HANDOFF), which takes it over."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import LimitlabError

LOCK = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# A sweep takes a run's lock before it starts the run's process, and names itself in this variable of
# that process, which then takes the lock over (see RunLock): no moment when the run is unlocked.
LOCK_HANDOFF = "LIMITLAB_RUN_LOCK_FROM"
SWEEP_MARK = "sweep"  # second word of a lock taken by a sweep, or by a process a sweep started


def _read_lock(run: Path) -> tuple[int, bool]:
    """(pid, taken by a sweep) of ``run``'s lock file; (0, False) when there is none or it is unreadable."""
    try:
        words = (Path(run) / LOCK).read_text().split()
        return int(words[0]) if words else 0, SWEEP_MARK in words[1:]
    except (OSError, ValueError):
        return 0, False


def lock_holder(run: Path) -> int | None:
    """The pid of the live process (other than this one) that holds ``run``'s lock, else None."""
    pid, _ = _read_lock(run)
    if pid and pid != os.getpid() and _pid_alive(pid):
        return pid
    return None


def held_by_a_sweep(run: Path) -> bool:
    """Whether ``run``'s lock was taken by a sweep (for the sweep's own messages)."""
    return _read_lock(run)[1]


def is_lock_file(name: str) -> bool:
    """The lock, or a lock being written (its temporary file)."""
    return name == LOCK or (name.startswith(f".{LOCK}.") and name.endswith(".tmp"))


def _lock_text(sweep: bool) -> str:
    return f"{os.getpid()}" + (f" {SWEEP_MARK}" if sweep else "")


def _create_lock(path: Path, sweep: bool = False) -> bool:
    """Create the lock file ``path`` holding this process's pid, atomically and with its content
    (a hard link of a finished temporary file): False when a lock exists already."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_lock_text(sweep))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: an exclusive create, then the pid
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(_lock_text(sweep))
        return True
    finally:
        tmp.unlink(missing_ok=True)


def handed_to_me(run: Path) -> bool:
    """Whether ``run``'s lock was taken for this process by the sweep that started it (LOCK_HANDOFF)."""
    giver = os.environ.get(LOCK_HANDOFF, "")
    return bool(giver) and (Path(run) / LOCK).is_file() and str(_read_lock(run)[0]) == giver


def claim(run: Path) -> int | None:
    """Take ``run``'s lock for a process this one is about to start (a sweep's run), creating the
    folder if needed. Returns None when taken, else the pid of the live process that holds it. A lock
    left by a dead process is taken over. The started process takes the lock over when it finds this
    process's pid in its LOCK_HANDOFF variable."""
    run = Path(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            if _create_lock(run / LOCK, sweep=True):
                return None
            pid = lock_holder(run)
            if pid:
                return pid
            (run / LOCK).unlink(missing_ok=True)  # the stale lock of a dead process
    except OSError as e:
        raise LimitlabError(f"cannot lock the run directory {run}: {e.strerror or e}") from None
    return lock_holder(run) or -1


def release(run: Path) -> None:
    """Remove ``run``'s lock if this process still holds it (its process ended before taking it over)."""
    if _read_lock(run)[0] == os.getpid():
        (Path(run) / LOCK).unlink(missing_ok=True)


class RunLock:
    """An exclusive lock file in the run directory, held while a process writes the run.

    A lock left by a process that no longer exists (a killed run) is taken over, and so is one that
    the sweep which started this process took for it (:func:`claim`).
    """

    def __init__(self, run: Path):
        self.path = Path(run) / LOCK

    def __enter__(self):
        if handed_to_me(self.path.parent):  # atomically: the lock is never absent nor empty
            tmp = self.path.with_name(f".{LOCK}.{os.getpid()}.tmp")
            try:
                tmp.write_text(_lock_text(sweep=True))
                os.replace(tmp, self.path)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise LimitlabError(f"cannot lock the run directory {self.path.parent}: {e.strerror or e}") from None
            return self
        for _ in range(2):
            try:
                created = _create_lock(self.path)
            except OSError as e:
                raise LimitlabError(f"cannot lock the run directory {self.path.parent}: {e.strerror or e}") from None
            if not created:
                pid = lock_holder(self.path.parent)
                if pid:
                    raise LimitlabError(f"the run directory {self.path.parent} is in use by process {pid}; "
                                        "wait for it to finish or choose another --out") from None
                self.path.unlink(missing_ok=True)  # stale lock of a dead process
                continue
            return self
        raise LimitlabError(f"cannot lock the run directory {self.path.parent}; choose another --out")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
