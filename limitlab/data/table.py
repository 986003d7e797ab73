"""Tables and embeddings as a dataset: ``.csv``, ``.parquet`` and ``.npz`` files, and the input
checks that the command line and the scikit-learn estimator share (the same one-sentence message
for the same mistake).

- ``.csv`` / ``.parquet``: one row per example; the label column is ``label_column`` (default
  ``label``); an optional ``split`` column with ``train`` / ``test`` picks the test rows. The other
  columns are turned into features by :mod:`limitlab.data.encoding` (fitted on the run's training
  split only, in :func:`limitlab.data.table_run.encode_run_table`); here they stay a DataFrame.
  Reading needs pandas (``.parquet`` also pyarrow); the encoding needs scikit-learn and skrub.
- ``.npz``: arrays ``X`` [N, D] (or images [N, C, H, W]) and ``y`` [N], optionally ``X_test`` and
  ``y_test``; read with ``allow_pickle=False``, every array's shape checked from its header first.

Labels may be any values (integers, strings) but not continuous numbers or missing; classes are
their sorted distinct values in the training part. Without a test part in the file, a fixed 20% of
the rows (drawn once with seed 0, independent of the run's seed, like the bundled digits) is the
test split; the paper protocol's validation split then comes from the remaining training rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from limitlab.data.checks import (_listing, check_features, check_label_values, check_not_sparse,  # noqa: F401
                                  check_same_length, encode_labels)  # (re-exported: the estimator's checks)
from limitlab.data.core import ImageData
from limitlab.errors import DataError, LimitlabError, first_line

TEST_FRACTION = 0.2     # held-out test share of a file without a test part (drawn with seed 0)
DEFAULT_LABEL_COLUMN = "label"
SPLIT_COLUMN = "split"
SUFFIXES = (".csv", ".parquet", ".npz")


# ------------------------------------------------------------------------------------------ reading
@dataclass
class TableData(ImageData):
    """A table or embedding file as a dataset. For ``.npz`` files ``train_images`` / ``test_images``
    are float32 feature tensors [N, D] (or [N, C, H, W]); for ``.csv`` / ``.parquet`` they are None
    until :func:`limitlab.data.table_run.encode_run_table` fits the encoding on the run's training
    split, and ``frame`` / ``test_frame`` hold the feature columns. ``mean`` and ``std`` are None
    because features are standardised with the run's training split only. ``train_rows`` gives,
    for each training example, its row in the file (0-based, header not counted; rows of X for
    .npz); ``row_keys`` its value in the ``id_column`` (None without one)."""

    feature_names: list[str] = field(default_factory=list)
    test_from_file: bool = False
    train_rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None     # likewise for each test example (rows of X_test for .npz with X_test)
    frame: object = None
    test_frame: object = None
    id_column: str | None = None
    row_keys: np.ndarray | None = None
    test_row_keys: np.ndarray | None = None
    path: Path | None = None


def read_table(path: str | Path, label_column: str | None = None, id_column: str | None = None) -> TableData:
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
        for flag, value in (("--label-column", label_column), ("--id-column", id_column)):
            if value is not None:
                raise DataError(f"{flag} is for .csv and .parquet files; {path} is .npz, whose labels are the array y")
        from limitlab.data.npz import read_npz
        x, y, x_test, y_test = read_npz(path)
        rows = np.arange(len(y))
    else:
        x, y, x_test, y_test, rows = _read_frame(path, suffix, label_column or DEFAULT_LABEL_COLUMN, id_column)
    from_file = x_test is not None
    if not from_file:  # a fixed held-out test split, independent of the run's seed
        n_test = int(round(TEST_FRACTION * len(y)))
        if len(y) < 10:
            raise DataError(f"{path} has only {len(y)} rows, too few for a held-out test split ({TEST_FRACTION:.0%}), "
                            "a validation split and training rows; give it at least 10 rows (better hundreds)")
        order = np.random.default_rng(0).permutation(len(y))
        test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
        x, y, x_test, y_test, rows, test_rows = _take(x, train), y[train], _take(x, test), y[test], rows[train], rows[test]
    else:  # the test rows: rows of X_test (.npz), else the file's rows not used for training
        test_rows = np.arange(len(y_test)) if suffix == ".npz" else np.setdiff1d(np.arange(len(y) + len(y_test)), rows)
    classes, y_idx, y_test_idx = encode_labels(y, y_test, what=f"the labels of {path}",
                                               test_what=f"the test rows of {path}")
    frame = x if not isinstance(x, np.ndarray) else None
    as_tensor = lambda a: None if frame is not None else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return TableData(
        name=f"table:{path}", num_classes=len(classes), train_images=as_tensor(x),
        train_labels=torch.from_numpy(y_idx), test_images=as_tensor(x_test), test_labels=torch.from_numpy(y_test_idx),
        mean=None, std=None, class_names=[str(c) for c in classes],
        feature_names=[f"x{i}" for i in range(x.shape[1])] if frame is None and x.ndim == 2 else [],
        test_from_file=from_file, train_rows=rows.astype(np.int64), test_rows=test_rows.astype(np.int64), frame=frame,
        test_frame=x_test if frame is not None else None, id_column=id_column,
        row_keys=None if id_column is None else x[id_column].astype(str).to_numpy(dtype=object),
        test_row_keys=None if id_column is None else x_test[id_column].astype(str).to_numpy(dtype=object),
        path=path.resolve())


def _take(x, rows: np.ndarray):
    """Rows of a numpy array or a DataFrame (re-indexed 0..n-1)."""
    return x[rows] if isinstance(x, np.ndarray) else x.iloc[rows].reset_index(drop=True)


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise LimitlabError("reading .csv and .parquet tables needs pandas: pip install 'limitlab[tables]'") from None
    return pd


def _header(path: Path, suffix: str) -> list[str]:
    """The column names as the file writes them (pandas renames a repeated one to NAME.1)."""
    try:
        if suffix == ".csv":
            import csv
            with open(path, encoding="utf-8", errors="replace", newline="") as f:
                return next(csv.reader(f), [])
        import pyarrow.parquet as pq
        return list(pq.read_schema(path).names)
    except Exception:  # unreadable: the reader below says why
        return []


def _read_csv(pd, path: Path):
    # pandas' C reader: measured faster here than the pyarrow engine, in wall and CPU time
    # (benchmarks/table_scale.py, benchmarks/RESULTS.md); low_memory=False: one dtype per column
    return pd.read_csv(path, low_memory=False)


def _read_frame(path: Path, suffix: str, label_column: str, id_column: str | None):
    pd = _pandas()
    header = _header(path, suffix)
    for name in (label_column, SPLIT_COLUMN):
        if header.count(name) > 1:
            raise DataError(f"{path} has {header.count(name)} columns named {name!r}; rename or drop the extra copies "
                            "(a second label column would leak the labels into the features)")
    try:
        if suffix == ".csv":
            frame = _read_csv(pd, path)
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
    except MemoryError:
        raise DataError(f"{path} does not fit in memory; use fewer rows or columns") from None
    except Exception as e:  # parser errors of many kinds
        raise DataError(f"cannot read {path} ({first_line(e)[:240]}); check that it is a valid table file") from None
    frame.columns = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"table file {path} has a header but no rows")
    if label_column not in frame.columns:
        raise DataError(f"{path} has no column {label_column!r}; pass --label-column with one of: "
                        f"{_listing(frame.columns, 12)}")
    if id_column is not None and (id_column not in frame.columns or id_column in (label_column, SPLIT_COLUMN)):
        raise DataError(f"--id-column {id_column!r} is not a feature column of {path}; choose one of "
                        f"{_listing([c for c in frame.columns if c not in (label_column, SPLIT_COLUMN)], 12)}")
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
    if frame.shape[1] == 0 or list(frame.columns) == [id_column]:
        raise DataError(f"{path} has no feature columns besides the label column {label_column!r}")
    y = labels.to_numpy()
    if y.dtype.kind == "O":
        y = y.astype(str)
    check_label_values(y, f"label column {label_column!r} of {path}")
    if split is None:
        return frame, y, None, None, np.arange(len(y))
    test = (split == "test").to_numpy()
    if test.all() or not test.any():
        raise DataError(f"column {SPLIT_COLUMN!r} of {path} marks {'every' if test.all() else 'no'} row as test; "
                        "mark some rows train and some test, or drop the column for a held-out split")
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    return _take(frame, train_rows), y[~test], _take(frame, test_rows), y[test], train_rows
