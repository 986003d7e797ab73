"""Every measurement of docs/method.md §8: accuracy against noisy and true labels, memorization of the
corrupted examples, Fano's lower bound on the label-noise information stored in the weights with the
noisy-label entropy it needs, and the label-error scores with their precision, recall and AUROC."""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import LimitlabError
from .noise import check_transition


def label_fit(preds: torch.Tensor, noisy: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """How predictions relate to the noisy and the true labels of a training set.

    Parameters
    ----------
    preds, noisy, true : torch.Tensor, shape (N,), int64
        Predicted, noisy (given) and true labels.

    Returns
    -------
    dict
        ``train_noisy_accuracy`` (agreement with the given labels), ``train_clean_accuracy``
        (with the true labels), and on the corrupted examples (noisy != true) the fractions
        predicted as their noisy label (``memorized_fraction``) and as their true label
        (``corrected_fraction``); both NaN when nothing is corrupted.
    """
    corrupted = noisy != true
    n_corrupted = int(corrupted.sum())
    out = {
        "train_noisy_accuracy": (preds == noisy).float().mean().item(),
        "train_clean_accuracy": (preds == true).float().mean().item(),
        "memorized_fraction": float("nan"),
        "corrected_fraction": float("nan"),
    }
    if n_corrupted:
        out["memorized_fraction"] = (preds[corrupted] == noisy[corrupted]).float().mean().item()
        out["corrected_fraction"] = (preds[corrupted] == true[corrupted]).float().mean().item()
    return out


def binary_entropy_bits(r: float) -> float:
    """H_b(r) in bits, with 0·log 0 = 0."""
    return -sum(p * math.log2(p) for p in (r, 1.0 - r) if p > 0)


def fano_information_lower_bound(train_error: float, num_classes: int, noisy_entropy_bits: float) -> float:
    """Lower bound on I(w; ỹ | x) / n in bits per example (docs/method.md §8), from Fano's inequality.

    ``train_error`` r is the fraction of training examples whose prediction differs from the noisy
    label; ``noisy_entropy_bits`` is H(ỹ|x) (see :func:`limitlab.noise.noisy_label_entropy_bits`).
    Returns max(0, H(ỹ|x) − H_b(r) − r·log2(K−1)).
    """
    if not 0.0 <= train_error <= 1.0:
        raise ValueError(f"the training error must be in [0, 1], not {train_error}")
    bound = noisy_entropy_bits - binary_entropy_bits(train_error) - train_error * math.log2(max(num_classes - 1, 1))
    return max(0.0, bound)


# --------------------------------------------------------------------------- label-error detection (docs/method.md §8)
# NumPy in, NumPy out (the detection files and the benchmarks work on whole arrays).


def label_error_scores(probs_f: np.ndarray, labels: np.ndarray, probs_q: np.ndarray | None = None,
                       ) -> dict[str, np.ndarray]:
    """Per-example scores of how likely each given label is wrong; higher = more suspect.

    Parameters
    ----------
    probs_f : np.ndarray, shape (N, K)
        Softmax outputs s(f) of the classifier on the training examples.
    labels : np.ndarray, shape (N,)
        The given (possibly noisy) labels ỹ, integers in [0, K).
    probs_q : np.ndarray, shape (N, K), optional
        Softmax outputs s(q) of a LIMIT q-network on the same examples.

    Returns
    -------
    scores : dict[str, np.ndarray], each of shape (N,), float64
        ``"classifier_disagreement"``: 1 − s(f)_ỹ, in [0, 1].
        ``"limit_gradient_mismatch"`` (only with ``probs_q``): ‖ĝ − g‖₂ = ‖e_ỹ − s(q)‖₂, in [0, √2].
        LIMIT's predicted gradient is ĝ = s(f) − s(q) and the true CE gradient is g = s(f) − e_ỹ,
        so ĝ − g = (s(f) − s(q)) − (s(f) − e_ỹ) = e_ỹ − s(q): s(f) cancels, and the score is how
        far the label-free gradient prediction is from the gradient the given label asks for.
        A q-network that does not memorize a wrong label leaves it a large mismatch.
    """
    probs_f, labels = np.asarray(probs_f, dtype=np.float64), np.asarray(labels)
    if probs_f.ndim != 2 or labels.shape != (len(probs_f),):
        raise ValueError(f"probs_f must be (N, K) and labels (N,), got {probs_f.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs_f.shape[1]):
        raise ValueError(f"labels must be in [0, {probs_f.shape[1]})")
    rows = np.arange(len(labels))
    scores = {"classifier_disagreement": 1.0 - probs_f[rows, labels]}
    if probs_q is not None:
        probs_q = np.asarray(probs_q, dtype=np.float64)
        if probs_q.shape != probs_f.shape:
            raise ValueError(f"probs_q must have the shape of probs_f {probs_f.shape}, got {probs_q.shape}")
        diff = -probs_q
        diff[rows, labels] += 1.0
        scores["limit_gradient_mismatch"] = np.linalg.norm(diff, axis=1)
    return scores


# The largest value each score can take: 1 − s(f)_ỹ ≤ 1, and ‖e_ỹ − s(q)‖₂ ≤ √2 (s(q) on another class).
SCORE_MAX = {"classifier_disagreement": 1.0, "limit_gradient_mismatch": math.sqrt(2.0)}


def label_quality(scores: np.ndarray, name: str) -> np.ndarray:
    """cleanlab's ``label_quality`` convention for a score of :func:`label_error_scores`.

    Parameters
    ----------
    scores : np.ndarray, shape (N,)
        One entry of :func:`label_error_scores` (higher = more suspect).
    name : str
        Its key, ``"classifier_disagreement"`` or ``"limit_gradient_mismatch"``.

    Returns
    -------
    quality : np.ndarray, shape (N,), float64
        ``1 − score / SCORE_MAX[name]`` in [0, 1]; low = suspicious. A fixed scale, so the quality
        of an example does not depend on the other examples. For classifier_disagreement it is
        s(f)_ỹ, cleanlab's "self_confidence".
    """
    return np.clip(1.0 - np.asarray(scores, dtype=np.float64) / SCORE_MAX[name], 0.0, 1.0)


def precision_recall_at_k(scores: np.ndarray, is_error: np.ndarray, k: int) -> tuple[float, float]:
    """Precision and recall of the ``k`` highest-scored examples as a flagged set.

    Parameters
    ----------
    scores : np.ndarray, shape (N,)
        Higher = more likely a label error.
    is_error : np.ndarray, shape (N,), bool
        The known label errors (e.g. the corruption mask).
    k : int
        How many top-scored examples to flag, >= 1 (clipped to N). Ties at the cut are broken
        by position (earlier first).

    Returns
    -------
    (precision, recall) : tuple[float, float]
        errors among the top k / k, and / the number of errors (NaN when there are none).
    """
    scores, is_error = np.asarray(scores, dtype=np.float64), np.asarray(is_error, dtype=bool)
    if k < 1:
        raise ValueError(f"k must be >= 1, not {k}")
    k = min(k, len(scores))
    hits = int(is_error[np.argsort(-scores, kind="stable")[:k]].sum())
    n_errors = int(is_error.sum())
    return hits / k if k else float("nan"), hits / n_errors if n_errors else float("nan")


def auroc(scores: np.ndarray, is_error: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for separating errors from clean examples.

    Computed from ranks (Mann–Whitney U): the probability that a random error scores higher than a
    random clean example, ties counted one half. O(N log N).

    Parameters
    ----------
    scores : np.ndarray, shape (N,)
    is_error : np.ndarray, shape (N,), bool

    Returns
    -------
    auroc : float
        In [0, 1] (1: every error ranked above every clean example, 0.5: chance); NaN when either
        class is absent.
    """
    scores, is_error = np.asarray(scores, dtype=np.float64), np.asarray(is_error, dtype=bool)
    n_pos = int(is_error.sum())
    n_neg = len(is_error) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based, ties get their mean rank
    u = ranks[is_error].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def flagged_metrics(flagged: np.ndarray, is_error: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of a flagged set against the known label errors.

    Parameters
    ----------
    flagged : np.ndarray, shape (N,), bool
        The examples flagged as label errors.
    is_error : np.ndarray, shape (N,), bool
        The known label errors.

    Returns
    -------
    metrics : dict with ``precision`` (NaN when nothing is flagged), ``recall`` (NaN when there are
        no errors) and ``f1`` (their harmonic mean; 0 when both are 0, NaN when either is NaN).
    """
    flagged, is_error = np.asarray(flagged, dtype=bool), np.asarray(is_error, dtype=bool)
    tp = int((flagged & is_error).sum())
    precision = tp / flagged.sum() if flagged.any() else float("nan")
    recall = tp / is_error.sum() if is_error.any() else float("nan")
    if math.isnan(precision) or math.isnan(recall):
        f1 = float("nan")
    else:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


# --------------------------------------------------------------------------- H(ỹ|x) for the bound (docs/method.md §8)
def _entropy_bits(probs: np.ndarray) -> np.ndarray:
    """Entropy in bits along the last axis, with 0 log 0 = 0."""
    probs = np.asarray(probs, dtype=np.float64)
    terms = np.where(probs > 0, -probs * np.log2(np.where(probs > 0, probs, 1.0)), 0.0)
    return terms.sum(axis=-1)


def noisy_label_entropy_bits(transition: np.ndarray, class_frequencies: np.ndarray) -> float:
    """``H(noisy label | x)`` in bits, assuming the true label is a function of ``x``.

    Equals ``sum_y pi_y * H(T[y, :])``. For uniform noise p=0.8, K=10 with any class frequencies
    this is 3.258 bits.

    Parameters
    ----------
    transition : np.ndarray, shape (K, K)
        Row-stochastic matrix ``T[true, observed]``.
    class_frequencies : np.ndarray, shape (K,)
        Frequencies ``pi_y`` of the true classes; non-negative, normalised here (counts are fine).

    Returns
    -------
    entropy : float
        Bits per example, in [0, log2 K].
    """
    t = check_transition(transition)
    pi = np.asarray(class_frequencies, dtype=np.float64)
    if pi.shape != (t.shape[0],):
        raise LimitlabError(f"class frequencies have shape {pi.shape} but must have one entry per class, shape ({t.shape[0]},)")
    if not np.all(np.isfinite(pi)) or np.any(pi < 0) or pi.sum() <= 0:
        raise LimitlabError("class frequencies must be finite, non-negative and not all zero")
    return float(pi @ _entropy_bits(t) / pi.sum())

