"""Per-example label-error scores beyond :func:`limitlab.metrics.label_error_scores`, and the
accumulator of a classifier's probabilities over a run's epochs (docs/detection.md).

- :func:`margin_score`: ``(1 − (p_ỹ − max_{k≠ỹ} p_k)) / 2`` in [0, 1], one minus cleanlab's
  "normalized margin"; above 1/2 exactly when another class is more probable than the given one.
- :class:`~limitlab.epoch_probs.EpochAverage`, :class:`~limitlab.epoch_probs.EpochProbs` (the
  training loop's accumulator of per-epoch probabilities) are re-exported from
  :mod:`limitlab.epoch_probs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics
from ..epoch_probs import EPOCH_PROBS, EpochAverage, EpochProbs, read_epoch_probs  # noqa: F401
from ..errors import LimitlabError

# Every score detect can rank by; each is in [0, 1] except the gradient mismatch (in [0, √2]).
SCORES = ("classifier_disagreement", "classifier_margin", "limit_gradient_mismatch",
          "averaged_disagreement", "averaged_margin")


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(f"probs must be (N, K) and labels (N,), got {probs.shape} and {labels.shape}")
    if probs.shape[1] < 2:
        raise ValueError("a margin needs at least two classes")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must be in [0, {probs.shape[1]})")
    return probs, labels


def margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p_ỹ − max_{k≠ỹ} p_k`` per row, in [−1, 1]: negative when another class is more probable."""
    probs, labels = _check(probs, labels)
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    others = probs.copy()
    others[rows, labels] = -np.inf
    return given - others.max(1)


def margin_score(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(1 − margin) / 2`` in [0, 1]; higher = more suspect (one minus cleanlab's normalized margin)."""
    return (1.0 - margin(probs, labels)) / 2.0


@dataclass
class LabelIssues:
    """Per-example label-issue results in cleanlab's convention (see :func:`label_issues`)."""

    score_name: str                 # which score ranks the examples
    score: np.ndarray               # [N] higher = more suspect
    label_quality: np.ndarray       # [N] in [0, 1], low = suspicious (metrics.label_quality)
    predicted: np.ndarray           # [N] the predicted class of the probabilities the score reads
    is_label_issue: np.ndarray      # [N] bool: the prediction differs from the given label
    scores: dict                    # every available score, by name


def label_issues(probs_f: np.ndarray, labels: np.ndarray, probs_q: np.ndarray | None = None,
                 score: str = "auto", probs_avg: np.ndarray | None = None) -> LabelIssues:
    """Score and flag each example's given label, from a classifier's (and LIMIT's q-network's) outputs.

    Parameters
    ----------
    probs_f : np.ndarray, shape (N, K)
        The classifier's softmax s(f).
    labels : np.ndarray, shape (N,)
        The given labels ỹ, integers in [0, K).
    probs_q : np.ndarray, shape (N, K), optional
        LIMIT's q-network softmax s(q).
    score : str
        "auto" (see :func:`auto_score`) or one of :data:`SCORES`.
    probs_avg : np.ndarray, shape (N, K), optional
        The classifier's softmax averaged over the run's epochs (:class:`EpochProbs`).

    Returns
    -------
    LabelIssues
        Scores: ``classifier_disagreement`` 1 − s(f)_ỹ, ``classifier_margin`` (1 − margin of s(f))/2,
        ``limit_gradient_mismatch`` ‖e_ỹ − s(q)‖₂ (with ``probs_q``), ``averaged_disagreement`` and
        ``averaged_margin`` (the same of ``probs_avg``, when given). Flagged: the argmax of the
        probabilities the chosen score reads (the average for averaged_*, else s(f)) differs from
        the given label.
    """
    scores = metrics.label_error_scores(probs_f, labels, probs_q)
    scores["classifier_margin"] = margin_score(probs_f, labels)
    if probs_avg is not None:
        scores["averaged_disagreement"] = 1.0 - np.asarray(probs_avg, dtype=np.float64)[np.arange(len(labels)), labels]
        scores["averaged_margin"] = margin_score(probs_avg, labels)
    name = score if score != "auto" else auto_score(probs_q is not None, probs_avg is not None)
    if name not in scores:
        raise LimitlabError(f"the score {name} is not available here; choose one of {', '.join(scores)}")
    predicted = np.asarray(probs_avg if name.startswith("averaged_") else probs_f).argmax(1)
    quality = np.clip(1.0 - scores[name] / metrics.SCORE_MAX.get(name, 1.0), 0.0, 1.0)
    return LabelIssues(score_name=name, score=scores[name], label_quality=quality,
                       predicted=predicted, is_label_issue=predicted != np.asarray(labels), scores=scores)


def auto_score(has_q: bool, has_average: bool) -> str:
    """The score ``auto`` ranks by (chosen on synthetic noise in benchmarks/detection_scores.py): the
    gradient mismatch for runs with a q-network (the epoch average was not better convincingly), else
    the margin of the classifier's probabilities averaged up to the best epoch when the run kept
    them, else of the best checkpoint's."""
    if has_q:
        return "limit_gradient_mismatch"
    return "averaged_margin" if has_average else "classifier_margin"
