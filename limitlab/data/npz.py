"""Reading an ``.npz`` of features and labels (``X``, ``y`` [, ``X_test``, ``y_test``]) safely: no
pickles, and every array's shape and size checked from its header before it is loaded, so a file
claiming 10^12 rows is one sentence instead of a MemoryError."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from limitlab.data.checks import _listing, check_features, check_same_length
from limitlab.errors import DataError

ARRAYS = ("X", "y", "X_test", "y_test")


def memory_bytes() -> int:
    """This machine's physical memory (a generous bound when it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of each .npy member, read from the headers only."""
    out = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
            out[member[:-4]] = (tuple(shape), dtype)
    return out


def _size_text(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def read_npz(path: Path):
    """(X, y, X_test, y_test) of an .npz file (X_test, y_test None when absent), each checked."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not an .npz archive (not a zip file); save features and labels with "
                        "np.savez(FILE, X=features, y=labels)")
    try:
        headers = _headers(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DataError(f"cannot read {path}: not a valid .npz file ({type(e).__name__}); save it again with "
                        "np.savez") from None
    keys = set(headers)
    if {"indptr", "indices", "format"} <= keys or {"row", "col", "format"} <= keys:
        raise DataError(f"{path} holds a scipy sparse matrix, which is not supported (the networks train on "
                        "dense tensors); save np.savez(FILE, X=X.toarray(), y=y)")
    missing = [k for k in ("X", "y") if k not in keys]
    if missing:
        raise DataError(f"{path} has no array {' or '.join(missing)} (it has {_listing(sorted(keys)) or 'none'}); "
                        "save it with np.savez(FILE, X=features, y=labels[, X_test=..., y_test=...])")
    if ("X_test" in keys) != ("y_test" in keys):
        raise DataError(f"{path} has {'X_test' if 'X_test' in keys else 'y_test'} without "
                        f"{'y_test' if 'X_test' in keys else 'X_test'}; give both or neither")
    limit = memory_bytes()
    for name in ARRAYS:
        if name not in headers:
            continue
        shape, dtype = headers[name]
        if dtype.hasobject:
            raise DataError(f"array {name} in {path} holds Python objects, which are not read (no pickles); "
                            "save numeric or string arrays with np.savez")
        size = float(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if size > limit / 2:
            raise DataError(f"array {name} in {path} claims shape {shape} ({_size_text(size)}), more than half of "
                            f"this machine's memory ({_size_text(limit)}); the file is corrupt or too large for it")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ARRAYS if k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path}: not a valid .npz file ({type(e).__name__}); save it again with "
                        "np.savez") from None
    x, y = arrays["X"], arrays["y"]
    x_test, y_test = arrays.get("X_test"), arrays.get("y_test")
    for name, a in (("y", y), ("y_test", y_test)):
        if a is not None and a.ndim != 1:
            raise DataError(f"array {name} in {path} has shape {a.shape} but must be 1-D, one label per row of "
                            f"{'X' if name == 'y' else 'X_test'}")
    for name, a in (("X", x), ("X_test", x_test)):
        if a is None:
            continue
        if a.dtype.kind not in "biuf":
            raise DataError(f"array {name} in {path} has dtype {a.dtype}; features must be numbers")
        check_features(a, what=f"array {name} in {path}")
        if a.shape[1] == 0 or 0 in a.shape[2:]:
            raise DataError(f"array {name} in {path} has shape {a.shape}: no features in its rows; give X at "
                            "least one feature column")
    if len(x) == 0:
        raise DataError(f"array X in {path} has no rows")
    check_same_length(len(x), len(y), f"arrays X and y in {path}")
    if x_test is not None:
        check_same_length(len(x_test), len(y_test), f"arrays X_test and y_test in {path}")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"array X_test in {path} has rows of shape {x_test.shape[1:]} but X has {x.shape[1:]}")
    return x, y, x_test, y_test
