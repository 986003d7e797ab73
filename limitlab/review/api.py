"""The review page from Python, without a run directory: for a fitted :class:`LimitClassifier` or a
:func:`find_label_issues` table, with the X and y it was made from."""

from __future__ import annotations

import numpy as np

from ..errors import LimitlabError
from .source import Pool, ReviewData, normalise


def _class_ids(y, classes) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    try:
        return np.array([lookup[v] for v in np.asarray(y).tolist()], dtype=np.int64)
    except KeyError as e:
        raise LimitlabError(f"y holds the label {e.args[0]!r}, which is not one of the classes") from None


def _inputs(X):
    """(kind, numeric array or None, the table as a DataFrame or None, feature names)."""
    if hasattr(X, "iloc"):
        numeric = X.select_dtypes("number")
        x = numeric.to_numpy(dtype=np.float64) if numeric.shape[1] == X.shape[1] else None
        return "table", x, X.reset_index(drop=True), [str(c) for c in X.columns]
    x = np.asarray(X.detach().cpu().numpy() if hasattr(X, "detach") else X)
    if x.ndim >= 3:
        return "image", x if x.ndim == 4 else x[:, None], None, []
    return "table", x.astype(np.float64), None, [f"x{j}" for j in range(x.shape[1])]


def from_python(clf_or_issues, X, y, true_labels=None) -> ReviewData:
    """A :class:`ReviewData` over all examples of (X, y), ranked by the label-issue score."""
    kind, x, frame, names = _inputs(X)
    n = len(x) if x is not None else len(frame)
    if len(y) != n:
        raise LimitlabError(f"X has {n} examples but y has {len(y)} labels")
    if hasattr(clf_or_issues, "classifier_"):  # a fitted LimitClassifier
        from ..analysis.detect import label_issues

        clf = clf_or_issues
        classes = np.asarray(clf.classes_)
        given = _class_ids(y, classes)
        from .source import _features_hook

        store, handle = _features_hook(clf.classifier_)
        try:
            probs = clf.predict_proba(X)
        finally:
            if handle is not None:
                handle.remove()
        import torch

        feats = torch.cat(store).flatten(1).numpy() if store and sum(map(len, store)) == n else probs
        probs_q = None
        if clf.q_network_ is not None:  # LIMIT: rank by its q-network's gradient mismatch, as fit() did
            from ..estimator_params import tensor

            probs_q = clf._proba(clf.q_network_, tensor(clf._validate(X, None, reset=False)[0], clf._scale.device))
        issues = label_issues(probs, given, probs_q)
        score, flagged = issues.score, issues.is_label_issue
    elif hasattr(clf_or_issues, "columns") and {"label_quality", "given_label", "predicted_label"} <= set(
            clf_or_issues.columns):  # a find_label_issues table
        table = clf_or_issues
        if len(table) != n:
            raise LimitlabError(f"the label-issue table has {len(table)} rows but X has {n} examples")
        classes = np.unique(np.concatenate([np.asarray(y), table["predicted_label"].to_numpy()]))
        given = _class_ids(y, classes)
        predicted = _class_ids(table["predicted_label"].to_numpy(), classes)
        probs = np.full((n, len(classes)), np.nan)
        probs[np.arange(n), predicted] = 1.0  # the table has no probabilities: the prediction first
        probs = np.nan_to_num(probs, nan=0.0)
        score = 1.0 - table["label_quality"].to_numpy(dtype=np.float64)
        flagged = table["is_label_issue"].to_numpy(dtype=bool)
        feats = np.nan_to_num(x.reshape(n, -1)) if x is not None else probs
        if x is not None and kind == "table":
            feats = (feats - feats.mean(0)) / np.where(feats.std(0) > 0, feats.std(0), 1.0)
    else:
        raise LimitlabError("review_labels takes a fitted LimitClassifier or the table find_label_issues returned")
    order = np.argsort(-score, kind="stable")
    pool = Pool(index=np.arange(n), x=x, labels=given, probs=np.asarray(probs, dtype=np.float64),
                features=normalise(feats))
    true = None if true_labels is None else _class_ids(true_labels, classes)[order]
    data = ReviewData(kind=kind, class_names=[str(c) for c in classes], index=order, split=np.array(["train"] * n,
                      dtype=object), given=given[order], score=np.asarray(score)[order],
                      flagged=np.asarray(flagged)[order], pools={"train": pool}, true=true,
                      file_row=order if frame is not None else None, table=frame, label_column=None,
                      feature_names=names, title=f"{n} examples, {len(classes)} classes")
    data.classes = classes
    return data


def review_labels(clf_or_issues, X, y, *, true_labels=None, decisions=None, host: str = "127.0.0.1", port: int = 0,
                  open_browser: bool = True, on_start=None) -> np.ndarray:
    """Review the suspected label errors of (X, y) on the local page and return the corrected labels.

    Serves the page (its URL is printed) and blocks until the reviewer presses Done on it, or Ctrl+C here.

    Parameters
    ----------
    clf_or_issues : a fitted :class:`~limitlab.LimitClassifier` (top-3 classes with probabilities and
        nearest neighbours in its penultimate features), or the table :func:`~limitlab.find_label_issues`
        returned (the predicted class only; neighbours in the input features).
    X, y : the examples (rows, a DataFrame, or images [N, H, W] / [N, C, H, W]) and their given labels.
    true_labels : optional; when known (synthetic noise) the page counts how many decisions were right.
    decisions : optional path of a decisions.jsonl to keep (and resume) the decisions; default: memory only.
    host, port : where to listen (default 127.0.0.1, a free port).
    open_browser : open the page in the default browser.
    on_start : optional callable given the page URL once the server listens (e.g. to print it elsewhere).

    Returns
    -------
    np.ndarray, one label per example in the order of y: the decided label where one was accepted or
    picked, the given one elsewhere; excluded examples are -1 (integer labels) or None (other labels).
    """
    from .serve import Server, announce
    from .server import Review
    from .state import Decisions

    data = from_python(clf_or_issues, X, y, true_labels)
    review = Review(data, Decisions(decisions))
    server = Server(review, host=host, port=port, with_done=True)
    announce(server, open_browser)
    if on_start is not None:
        on_start(server.url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return corrected(data, review)


def corrected(data: ReviewData, review) -> np.ndarray:
    """Labels of every example (in input order) after the review's standing decisions."""
    after = review.labels()          # rank order, class ids, -1 excluded
    ids = np.empty(len(after), dtype=np.int64)
    ids[data.index] = after
    classes = data.classes
    if classes.dtype.kind in "iu":
        return np.where(ids >= 0, classes[np.maximum(ids, 0)], -1)
    out = np.array([classes[i] if i >= 0 else None for i in ids], dtype=object)
    return out
