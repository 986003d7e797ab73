"""The run directory contract (DESIGN.md): file names, atomic writes, a lock so that two processes
never write the same run, and safe reading of checkpoints and metrics.

    config.json  metrics.jsonl  noisy_labels.npz  checkpoints/last.pt  checkpoints/best.pt  summary.json
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import LimitlabError
from .runlock import LOCK, RunLock, handed_to_me, lock_holder  # noqa: F401 (lock_holder: rundir's API)

CONFIG, METRICS, NOISY_LABELS, SUMMARY = "config.json", "metrics.jsonl", "noisy_labels.npz", "summary.json"
LAST, BEST = "checkpoints/last.pt", "checkpoints/best.pt"
# A method's extra arrays (its ``prepare`` hook's ``extras``), saved as NAME.csv: fw's estimated T.
EXTRAS = ("fw_transition",)
LABEL_ERRORS, DETECTION, SUSPECTS = "label_errors.csv", "detection.json", "suspects.png"  # `limitlab detect`
EPOCH_PROBS = "epoch_probs.npz"  # training-set softmax averaged over the epochs (limitlab.epoch_probs.EpochProbs)
# Every file limitlab writes into a run directory (paths relative to it): --overwrite deletes a
# folder only when it holds nothing else.
TABLE = "table.json"  # table:FILE runs: the table's path, checksum and encoding (limitlab.data.table_run)
RUN_FILES = (CONFIG, METRICS, NOISY_LABELS, SUMMARY, LOCK, LAST, BEST, *(f"{name}.csv" for name in EXTRAS),
             LABEL_ERRORS, DETECTION, SUSPECTS, EPOCH_PROBS, TABLE)


def extra_file(run: Path, name: str) -> Path:
    """Where a method's extra array ``name`` goes; it must be listed in EXTRAS, so that --overwrite
    recognises the file as limitlab's."""
    if name not in EXTRAS:
        raise ValueError(f"extra array {name!r} is not in rundir.EXTRAS; add it there")
    return Path(run) / f"{name}.csv"


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename: a killed process never leaves half
    a file. (No fsync: it protects against power loss, not a killed run, and costs seconds per epoch.)"""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise LimitlabError(f"cannot write {path}: {e.strerror or e}") from None
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give results the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a folder in the way
            raise LimitlabError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def check_output_dir(path: str | Path, flag: str) -> None:
    """Raise LimitlabError unless ``path`` is a folder, or can be made one, that this process may
    write into: checked before any work, so a bad ``flag`` fails at once and writes nothing."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == path else f" ({folder} is a file)"
                raise LimitlabError(f"{flag} {path} is not a folder{where}; give a folder to write into")
            if not os.access(folder, os.W_OK | os.X_OK):
                raise LimitlabError(f"{flag} {path}: no permission to write into {folder}; choose another {flag}")
            return
        if folder.is_symlink():
            raise LimitlabError(f"{flag} {path}: {folder} is a symbolic link to nothing; choose another {flag}")


def finite(obj):
    """``obj`` (dicts, lists, numbers, ...) with every NaN and ±inf replaced by None, so that it is
    written as strict JSON (``null``), which every JSON reader accepts (a bare NaN is not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def json_text(obj, indent: int | None = None) -> str:
    """``obj`` as strict JSON: non-finite numbers become ``null`` (see :func:`finite`)."""
    return json.dumps(finite(obj), indent=indent, allow_nan=False)


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented strict JSON (NaN as null), atomically."""
    atomic_write_bytes(path, (json_text(obj, indent=2) + "\n").encode())


def save_torch(path: Path, obj) -> None:
    """``torch.save`` ``obj`` to ``path``, atomically."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_npz(path: Path, **arrays) -> None:
    """Save NumPy arrays as a compressed ``.npz`` file, atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: Path):
    """A JSON file limitlab wrote (summary.json, ...); LimitlabError when it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, or not UTF-8
        raise LimitlabError(f"cannot read {path} ({getattr(e, 'strerror', None) or e}); "
                            "restore it or delete the run to train it again") from None


def read_metrics(run: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl, one dict per epoch ([] when there is none yet).

    A torn last line (a process killed while appending) is dropped; an unreadable line before it
    means the file is corrupt (LimitlabError).
    """
    path = Path(run) / METRICS
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise LimitlabError(f"cannot read {path}: {e.strerror or e}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    rows = []
    for i, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            row = None
        if not isinstance(row, dict):
            if i == len(lines) - 1:
                break  # torn by a kill during the append: that epoch never got its checkpoint
            raise LimitlabError(f"{path} is corrupt: line {n} is not a JSON object; restore the file "
                                "or start the run again with --overwrite")
        rows.append(row)
    return rows


def write_metrics(run: Path, rows: list[dict]) -> None:
    """Replace a run's ``metrics.jsonl`` by ``rows`` (strict JSON, NaN as null), atomically."""
    atomic_write_bytes(Path(run) / METRICS, "".join(json_text(r) + "\n" for r in rows).encode())


def append_metrics(run: Path, row: dict) -> None:
    """Append one epoch's record (strict JSON, NaN as null) to a run's ``metrics.jsonl``.

    All or nothing: when the write fails (a full disk), the file is cut back to its earlier length, so
    it never holds a torn line, and LimitlabError names the file and the reason."""
    path = Path(run) / METRICS
    data = (json_text(row) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise LimitlabError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:  # a full disk, a quota
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise LimitlabError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location="cpu", keys: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint as data: ``torch.load(weights_only=True)``, which builds tensors, numbers,
    strings, lists and dicts and refuses anything else (a pickle that would run code).

    A missing, refused, empty, truncated or garbage file, or one without the ``keys`` asked for,
    raises LimitlabError: one sentence naming the file.
    """
    path = Path(path)
    fix = "replace it with an intact copy, or train the run again"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise LimitlabError(f"checkpoint {path} does not exist; {fix}") from None
    except IsADirectoryError:
        raise LimitlabError(f"checkpoint {path} is a folder, not a file; {fix}") from None
    except PermissionError as e:
        raise LimitlabError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise LimitlabError(f"checkpoint {path} was refused: it holds Python objects other than tensors, "
                                f"numbers, strings, lists and dicts, which would run code when loaded and which "
                                f"a limitlab checkpoint never holds (it may be malicious); {fix}") from None
        raise LimitlabError(f"checkpoint {path} is truncated or corrupt; {fix}") from None
    except Exception:  # torch raises almost anything on garbage (EOFError, RuntimeError, KeyError, ...)
        empty = path.is_file() and path.stat().st_size == 0
        raise LimitlabError(f"checkpoint {path} is {'empty' if empty else 'truncated or corrupt'}; {fix}") from None
    if not isinstance(ckpt, dict):
        raise LimitlabError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a limitlab checkpoint; {fix}")
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise LimitlabError(f"checkpoint {path} is not a limitlab checkpoint (it lacks {', '.join(missing)}); {fix}")
    return ckpt


# --------------------------------------------------------------------------- what a run directory holds
def _is_temp_of(name: str, names) -> bool:
    """Whether ``name`` is a temporary file of atomic_write_bytes for one of ``names``."""
    return name.endswith(".tmp") and any(name.startswith(f".{n}.") for n in names)


def foreign_entries(run: Path) -> list[str]:
    """The entries of ``run`` that limitlab does not write (see RUN_FILES), as paths relative to it.
    Symbolic links are always foreign: limitlab never makes one."""
    run = Path(run)
    files: dict[str, set[str]] = {}
    for rel in RUN_FILES:
        folder, _, name = rel.rpartition("/")
        files.setdefault(folder, set()).add(name)
    foreign = []

    def visit(folder: Path, prefix: str):
        own = files.get(prefix, set())
        for entry in sorted(folder.iterdir()):
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.is_symlink():
                foreign.append(rel)
            elif entry.is_dir() and rel in files:
                visit(entry, rel)
            elif not (entry.is_file() and (entry.name in own or _is_temp_of(entry.name, own))):
                foreign.append(rel + ("/" if entry.is_dir() else ""))

    visit(run, "")
    return foreign


def remove_run_files(run: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete what limitlab wrote in ``run`` (RUN_FILES, their temporary files, the checkpoints/
    folder once empty), and nothing else; ``keep``: names to leave (the lock while holding it)."""
    run = Path(run)
    for folder in sorted({str(Path(rel).parent) for rel in RUN_FILES}, key=len, reverse=True):
        where = run / folder if folder != "." else run
        if not where.is_dir() or where.is_symlink():
            continue
        own = {Path(rel).name for rel in RUN_FILES if str(Path(rel).parent) == folder} - set(keep)
        for entry in where.iterdir():
            if entry.is_file() and not entry.is_symlink() and (entry.name in own or _is_temp_of(entry.name, own)):
                entry.unlink(missing_ok=True)
        if where != run and not any(where.iterdir()):
            where.rmdir()


def _check_is_run(run: Path) -> None:
    """Raise unless ``run`` is recognisably a limitlab run directory: its config.json reads as a
    limitlab Config, and it holds only files limitlab writes."""
    from .config import Config

    refuse = f"--out {run} is not empty and is not a limitlab run directory"
    keep = "refusing to delete it with --overwrite; choose another --out"
    if not (run / CONFIG).is_file() or (run / CONFIG).is_symlink():
        raise LimitlabError(f"{refuse} (it has no {CONFIG}); {keep}")
    try:
        Config.load(run / CONFIG)
    except LimitlabError:
        raise LimitlabError(f"{refuse} (its {CONFIG} is not a limitlab config); {keep}") from None
    foreign = foreign_entries(run)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise LimitlabError(f"{refuse} (it also holds {shown}); {keep}")


def prepare_run_dir(run: Path, resume: bool, overwrite: bool) -> Path | None:
    """Check that ``run`` may be written, before anything is written, and create it.

    A fresh run needs a missing or empty directory; ``overwrite`` clears an earlier run directory
    (recognisably a limitlab run: see :func:`foreign_entries`) and refuses anything else (a file, a
    symbolic link, a folder with other files in it); ``resume`` needs an earlier run.
    Returns the topmost folder this call created (None when ``run`` existed), so that a run that
    fails before its first checkpoint can remove exactly what it made.
    """
    run = Path(run)
    if resume and overwrite:
        raise LimitlabError("--resume and --overwrite contradict each other; choose one")
    if resume:
        if not (run / CONFIG).exists():
            raise LimitlabError(f"nothing to resume in {run}: it has no {CONFIG}; drop --resume to start a new run")
        return None
    if run.is_symlink():
        if overwrite:
            raise LimitlabError(f"--out {run} is a symbolic link; --overwrite deletes only a real run directory, "
                                "so give the folder it points to, or choose another --out")
        if not run.exists():
            raise LimitlabError(f"--out {run} is a symbolic link to nothing; choose another --out")
    if run.exists() and not run.is_dir():
        raise LimitlabError(f"--out {run} is a file, not a directory; choose another --out")
    if run.exists() and any(not (p.name == LOCK and handed_to_me(run)) for p in run.iterdir()):
        if not overwrite:
            raise LimitlabError(f"--out {run} is not empty; pass --resume to continue that run, "
                                "--overwrite to replace it, or choose another --out")
        _check_is_run(run)
        if (run / LOCK).exists():
            with RunLock(run):  # raises if another process is writing it
                pass
        remove_run_files(run)
    created = None
    for folder in (run, *run.parents):
        if folder.exists() or folder.is_symlink():
            break
        created = folder
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LimitlabError(f"cannot create --out {run}: {e.strerror or e}; choose another --out") from None
    return created


@contextlib.contextmanager
def writing(run: Path, fresh: bool, created: Path | None = None):
    """Hold the run's lock (RunLock) while a process writes ``run``.

    When a ``fresh`` run (not a resumed one) fails with an exception before its first checkpoint
    (an undecodable image, a diverging first epoch), what it wrote is removed, and so are the
    folders it created (``created``: prepare_run_dir's answer), so the next attempt finds ``run``
    as it was. A KeyboardInterrupt keeps the files: ``--resume`` continues from them.
    """
    run = Path(run)
    undo = False
    try:
        with RunLock(run):
            try:
                yield
            except Exception:
                undo = fresh and not (run / LAST).exists()
                if undo:
                    remove_run_files(run, keep=(LOCK,))
                raise
    finally:
        if undo and created is not None:
            for folder in (run, *run.parents):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only empty folders go
                if folder == created:
                    break
