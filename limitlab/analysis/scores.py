"""Per-example label-error scores beyond :func:`limitlab.metrics.label_error_scores`, and the
accumulator of a classifier's probabilities over a run's epochs (docs/detection.md).

- :func:`margin_score`: ``(1 − (p_ỹ − max_{k≠ỹ} p_k)) / 2`` in [0, 1], one minus cleanlab's
  "normalized margin"; above 1/2 exactly when another class is more probable than the given one.
- :class:`EpochAverage`: the mean of the softmax outputs on the training rows over the epochs it
  is shown (``on_epoch``); the averaged probabilities are the in-sample signal that a 2025 benchmark
  of noisy-label detectors (Pickler et al.) found strongest, together with margins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import rundir
from ..errors import LimitlabError


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


class EpochAverage:
    """The running mean of per-epoch softmax outputs [N, K] on the same rows.

    ``on_epoch(probs)`` adds one epoch's outputs (numpy or torch); ``mean`` is their average;
    ``save(path)`` / ``load(path)`` keep it (with the epoch count) in a .npz read without pickle.
    """

    def __init__(self) -> None:
        """An empty average (no epoch yet)."""
        self.total: np.ndarray | None = None
        self.epochs = 0

    def on_epoch(self, probs) -> None:
        """Add one epoch's softmax outputs [N, K] (a numpy array or a torch tensor) on the same rows."""
        p = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=np.float64)
        if self.total is not None and p.shape != self.total.shape:
            raise ValueError(f"epoch outputs of shape {p.shape} after {self.total.shape}")
        self.total = p.copy() if self.total is None else self.total + p
        self.epochs += 1

    @property
    def mean(self) -> np.ndarray:
        """The average [N, K] of the epochs added so far."""
        if self.total is None:
            raise ValueError("no epoch has been added")
        return self.total / self.epochs

    def save(self, path: str | Path) -> None:
        """Write the average and the epoch count to ``path`` (.npz, atomically)."""
        rundir.save_npz(Path(path), mean=self.mean.astype(np.float32), epochs=np.int64(self.epochs))

    @classmethod
    def load(cls, path: str | Path) -> "EpochAverage":
        """Read what :meth:`save` wrote (without pickle); a damaged file is one LimitlabError sentence."""
        try:
            with np.load(path, allow_pickle=False) as f:
                mean, epochs = np.asarray(f["mean"], dtype=np.float64), int(f["epochs"])
        except Exception as e:  # truncated or foreign file
            raise LimitlabError(f"{path} is truncated or corrupt ({type(e).__name__}); delete it or retrain") from None
        if mean.ndim != 2 or epochs < 1:
            raise LimitlabError(f"{path} does not hold per-epoch averaged probabilities; delete it or retrain")
        avg = cls()
        avg.total, avg.epochs = mean * epochs, epochs
        return avg
