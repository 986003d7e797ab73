"""Tables and embeddings as a dataset: ``.csv``, ``.parquet`` and ``.npz`` files, and the input
checks that the command line and the scikit-learn estimator share (the same one-sentence message
for the same mistake).

- ``.csv`` / ``.parquet``: one row per example; the label column is ``label_column`` (default
  ``label``); an optional ``split`` column with ``train`` / ``test`` picks the test rows. Numeric
  columns are features as they are; any other column is one-hot encoded (``column=value``), and
  the encoding is recorded. Reading needs pandas (``.parquet`` also pyarrow).
- ``.npz``: arrays ``X`` [N, D] (or images [N, C, H, W]) and ``y`` [N], optionally ``X_test`` and
  ``y_test``; read with ``allow_pickle=False``.

Labels may be any values (integers, strings); classes are their sorted distinct values in the
training part. Without a test part in the file, a fixed 20% of the rows (drawn once with seed 0,
independent of the run's seed, like the bundled digits) is the test split; the paper protocol's
validation split then comes from the remaining training rows. Features are standardised later with
statistics of the run's training split only (see ``mean=None`` in :class:`TableData`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from limitlab.data.core import ImageData
from limitlab.errors import DataError, LimitlabError

TEST_FRACTION = 0.2     # held-out test share of a file without a test part (drawn with seed 0)
DEFAULT_LABEL_COLUMN = "label"
SPLIT_COLUMN = "split"
SUFFIXES = (".csv", ".parquet", ".npz")


# ------------------------------------------------------------------------------------- shared checks
def _listing(items, limit: int = 8) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_not_sparse(x, what: str = "X") -> None:
    """Refuse scipy sparse input: the networks train on dense tensors on the device."""
    if hasattr(x, "tocsr") or type(x).__module__.startswith("scipy.sparse"):
        raise DataError(f"{what} is a sparse matrix, which is not supported (the networks train on dense tensors); "
                        f"pass {what}.toarray() if it fits in memory, or reduce its dimension first")


def check_same_length(n_x: int, n_y: int, source: str = "X and y") -> None:
    """One label per row of features."""
    if n_x != n_y:
        raise DataError(f"{source} have different lengths ({n_x} rows of features, {n_y} labels); "
                        "give one label per row")


def check_features(x: np.ndarray, feature_names=None, what: str = "X") -> None:
    """Features must be at least 2-D (rows × features) and finite; NaN/inf are counted per column."""
    if x.ndim < 2:
        raise DataError(f"{what} is 1-D (shape {tuple(x.shape)}) but must be 2-D, one row per example "
                        f"(Reshape your data: {what}.reshape(-1, 1) for a single feature)")
    if x.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    if x.ndim == 2:
        counts = bad.sum(0)
        names = list(feature_names) if feature_names is not None else [f"#{i}" for i in range(x.shape[1])]
        cols = [f"{names[i]} ({counts[i]})" for i in np.flatnonzero(counts)]
        where = f"in column{'s' if len(cols) > 1 else ''} {_listing(cols)}"
    else:
        where = f"in {int(bad.reshape(len(x), -1).any(1).sum())} examples"
    raise DataError(f"{what} has {int(bad.sum())} missing or infinite values (NaN, inf) {where}; "
                    "fill or drop them before training")


def check_missing_table(frame, source: str) -> None:
    """Missing (NaN, empty) or infinite cells of a pandas table, named by column with their counts."""
    counts = frame.isna().sum()
    numeric = frame.select_dtypes(include="number")
    if numeric.shape[1]:
        inf = np.isinf(numeric.to_numpy(dtype=np.float64, na_value=0.0)).sum(0)
        counts[numeric.columns] += inf
    counts = counts[counts > 0]
    if len(counts):
        cols = [f"{name} ({int(n)})" for name, n in counts.items()]
        raise DataError(f"{source} has {int(counts.sum())} missing or infinite values (NaN, inf) in "
                        f"column{'s' if len(cols) > 1 else ''} {_listing(cols)}; fill or drop them before training")


def encode_labels(y: np.ndarray, y_test: np.ndarray | None = None, what: str = "y", test_what: str = "the test split",
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(classes, y as indices into classes, y_test as indices or None).

    Classes are the sorted distinct values of ``y``; at least two are needed, and every label of
    ``y_test`` must be one of them.
    """
    y = np.asarray(y)
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        only = classes.tolist()[0] if len(classes) else "none"
        raise DataError(f"{what} has only one class ({only!r}); a classifier needs examples of at least two classes")
    test_idx = None
    if y_test is not None:
        y_test = np.asarray(y_test)
        unseen = np.setdiff1d(np.unique(y_test), classes)
        if len(unseen):
            raise DataError(f"{test_what} has label{'s' if len(unseen) > 1 else ''} {_listing(map(repr, unseen.tolist()))} "
                            f"that the training set never has; every such label must occur in training")
        test_idx = np.searchsorted(classes, y_test)
    return classes, y_idx.astype(np.int64), None if test_idx is None else test_idx.astype(np.int64)


# ------------------------------------------------------------------------------------------ reading
@dataclass
class TableData(ImageData):
    """A table or embedding file as a dataset: ``train_images`` / ``test_images`` are float32
    feature tensors [N, D] (or [N, C, H, W]); ``mean`` and ``std`` are None because features are
    standardised with the run's training split only. ``feature_names`` name the D columns after
    one-hot encoding; ``one_hot`` maps each encoded column to its categories; ``train_rows`` gives,
    for each training example, its row in the file (0-based, header not counted; rows of X for .npz)."""

    feature_names: list[str] = field(default_factory=list)
    one_hot: dict = field(default_factory=dict)
    test_from_file: bool = False
    train_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None     # likewise for each test example (rows of X_test for .npz with X_test)


def read_table(path: str | Path, label_column: str | None = None) -> TableData:
    """Read a ``.csv``, ``.parquet`` or ``.npz`` file as a :class:`TableData` (see the module doc).

    Every problem with the file is a one-sentence :class:`~limitlab.errors.DataError` (a
    LimitlabError and a ValueError).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"table file {path} must end in {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"table file {path} does not exist; give the path of a {', '.join(SUFFIXES)} file")
    if path.stat().st_size == 0:
        raise DataError(f"table file {path} is empty; it needs a header line and one row per example")
    if suffix == ".npz":
        if label_column is not None:
            raise DataError(f"--label-column is for .csv and .parquet files; {path} is .npz, whose labels are "
                            "the array y")
        x, y, x_test, y_test, names, one_hot = _read_npz(path)
        rows = np.arange(len(y))
    else:
        x, y, x_test, y_test, names, one_hot, rows = _read_frame(path, suffix, label_column or DEFAULT_LABEL_COLUMN)
    from_file = x_test is not None
    if not from_file:  # a fixed held-out test split, independent of the run's seed
        order = np.random.default_rng(0).permutation(len(y))
        n_test = int(round(TEST_FRACTION * len(y)))
        test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
        x, y, x_test, y_test, rows, test_rows = x[train], y[train], x[test], y[test], rows[train], rows[test]
        classes, y_idx, _ = encode_labels(np.concatenate([y, y_test]), what=f"the labels of {path}")
        y_idx, y_test_idx = y_idx[:len(y)], y_idx[len(y):]
    else:  # the test rows: rows of X_test (.npz), else the file's rows not used for training
        test_rows = np.arange(len(y_test)) if suffix == ".npz" else np.setdiff1d(np.arange(len(y) + len(y_test)), rows)
        classes, y_idx, y_test_idx = encode_labels(y, y_test, what=f"the labels of {path}")
    return TableData(
        name=f"table:{path}", num_classes=len(classes),
        train_images=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        train_labels=torch.from_numpy(y_idx),
        test_images=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        test_labels=torch.from_numpy(y_test_idx),
        mean=None, std=None, class_names=[str(c) for c in classes],
        feature_names=names, one_hot=one_hot, test_from_file=from_file, train_rows=rows.astype(np.int64),
        test_rows=test_rows.astype(np.int64))


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
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
            arrays = {k: f[k] for k in ("X", "y", "X_test", "y_test") if k in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        reason = "it holds object arrays, which are not read (no pickles)" if "allow_pickle" in str(e) else \
            "not a valid .npz file"
        raise DataError(f"cannot read {path}: {reason}; save numeric or string arrays with np.savez") from None
    x, y = arrays["X"], arrays["y"]
    x_test, y_test = arrays.get("X_test"), arrays.get("y_test")
    for name, a in (("X", x), ("X_test", x_test)):
        if a is not None and a.dtype.kind not in "biuf":
            raise DataError(f"array {name} in {path} has dtype {a.dtype}; features must be numbers")
    if len(x) == 0:
        raise DataError(f"array X in {path} has no rows")
    check_features(x, what=f"array X in {path}")
    check_same_length(len(x), len(y), f"arrays X and y in {path}")
    if y.ndim != 1:
        raise DataError(f"array y in {path} has shape {y.shape} but must be 1-D, one label per row of X")
    if x_test is not None:
        check_features(x_test, what=f"array X_test in {path}")
        check_same_length(len(x_test), len(y_test), f"arrays X_test and y_test in {path}")
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"array X_test in {path} has rows of shape {x_test.shape[1:]} but X has {x.shape[1:]}")
    names = [f"x{i}" for i in range(x.shape[1])] if x.ndim == 2 else []
    return x, y, x_test, y_test, names, {}


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise LimitlabError("reading .csv and .parquet tables needs pandas: pip install 'limitlab[tables]'") from None
    return pd


def _read_frame(path: Path, suffix: str, label_column: str):
    pd = _pandas()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            try:
                frame = pd.read_parquet(path)
            except ImportError:
                raise LimitlabError("reading .parquet files needs pyarrow: pip install 'limitlab[tables]' "
                                    "(or pip install pyarrow)") from None
    except LimitlabError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"table file {path} is empty; it needs a header line and one row per example") from None
    except Exception as e:  # parser errors of many kinds
        raise DataError(f"cannot read {path} ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                        "check that it is a valid table file") from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"table file {path} has a header but no rows")
    if label_column not in frame.columns:
        raise DataError(f"{path} has no column {label_column!r}; pass --label-column with one of: "
                        f"{_listing(frame.columns, 12)}")
    split = None
    if SPLIT_COLUMN in frame.columns and label_column != SPLIT_COLUMN:
        split = frame.pop(SPLIT_COLUMN).astype(str).str.strip().str.lower()
        bad = sorted(set(split) - {"train", "test"})
        if bad:
            raise DataError(f"column {SPLIT_COLUMN!r} of {path} must hold train or test, not {_listing(map(repr, bad))}")
    labels = frame.pop(label_column)
    if labels.isna().any():
        rows = np.flatnonzero(labels.isna().to_numpy())
        raise DataError(f"label column {label_column!r} of {path} has {len(rows)} empty cells (rows "
                        f"{_listing(rows + 2)} of the file); fill or drop them")
    if frame.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides the label column {label_column!r}")
    check_missing_table(frame, str(path))
    one_hot = {}
    parts, names = [], []
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind in "biuf":
            parts.append(values.to_numpy(dtype=np.float32)[:, None])
            names.append(column)
        else:  # categories, one column each, in sorted order
            cats = sorted(values.astype(str).unique())
            one_hot[column] = cats
            parts.append((values.astype(str).to_numpy()[:, None] == np.asarray(cats)[None, :]).astype(np.float32))
            names += [f"{column}={c}" for c in cats]
    x = np.concatenate(parts, axis=1)
    y = labels.to_numpy()
    if y.dtype.kind == "O":
        y = y.astype(str)
    if split is None:
        return x, y, None, None, names, one_hot, np.arange(len(y))
    test = (split == "test").to_numpy()
    if test.all() or not test.any():
        raise DataError(f"column {SPLIT_COLUMN!r} of {path} marks {'every' if test.all() else 'no'} row as test; "
                        "mark some rows train and some test, or drop the column for a held-out split")
    return x[~test], y[~test], x[test], y[test], names, one_hot, np.flatnonzero(~test)
