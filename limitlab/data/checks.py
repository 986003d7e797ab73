"""Input checks that the command line and the scikit-learn estimator share (the same one-sentence
message for the same mistake): features, lengths, sparse input, and labels."""

from __future__ import annotations

import numpy as np

from limitlab.errors import DataError


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


def check_label_values(y, what: str = "y") -> None:
    """Labels must be present (no NaN or empty cell) and classes, not continuous numbers."""
    y = np.asarray(y)
    if y.ndim != 1:
        return
    if y.dtype.kind in "fcO":
        missing = np.flatnonzero([v is None or v != v for v in y] if y.dtype.kind == "O" else np.isnan(y))
        if len(missing):
            raise DataError(f"{what} has {len(missing)} missing labels (NaN or empty; e.g. at positions "
                            f"{_listing(missing.tolist(), 5)}); give every row a label or drop those rows")
    if y.dtype.kind == "f":  # scikit-learn's type_of_target rule for "continuous": a value that is not an integer
        fractional = np.flatnonzero(y != np.round(y))
        if len(fractional):
            example = y[fractional[0]]
            raise DataError(f"Unknown label type: continuous numbers in {what} (e.g. {example:g}), not classes; "
                            "limitlab trains classifiers: give class labels (integers or names), or bin the values")


def encode_labels(y: np.ndarray, y_test: np.ndarray | None = None, what: str = "y", test_what: str = "the test split",
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(classes, y as indices into classes, y_test as indices or None).

    Classes are the sorted distinct values of ``y``; at least two are needed, and every label of
    ``y_test`` must be one of them.
    """
    y = np.asarray(y)
    check_label_values(y, what)
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        only = classes.tolist()[0] if len(classes) else "none"
        raise DataError(f"{what} has only one class ({only!r}); a classifier needs examples of at least two classes")
    test_idx = None
    if y_test is not None:
        y_test = np.asarray(y_test)
        check_label_values(y_test, test_what)
        unseen = np.setdiff1d(np.unique(y_test), classes)
        if len(unseen):
            raise DataError(f"{test_what} has label{'s' if len(unseen) > 1 else ''} {_listing(map(repr, unseen.tolist()))} "
                            f"that the training set never has; every such label must occur in training")
        test_idx = np.searchsorted(classes, y_test)
    return classes, y_idx.astype(np.int64), None if test_idx is None else test_idx.astype(np.int64)
