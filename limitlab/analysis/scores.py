"""Per-example label-error scores beyond :func:`limitlab.metrics.label_error_scores`, and the
accumulator of a classifier's probabilities over a run's epochs (docs/detection.md).

- :func:`margin_score`: ``(1 − (p_ỹ − max_{k≠ỹ} p_k)) / 2`` in [0, 1], one minus cleanlab's
  "normalized margin"; above 1/2 exactly when another class is more probable than the given one.
- :class:`EpochAverage`: the mean of the softmax outputs on the training rows over the epochs it
  is shown (``on_epoch``); the averaged probabilities are the in-sample signal that a 2025 benchmark
  of noisy-label detectors (Pickler et al.) found strongest, together with margins.
- :class:`EpochProbs`: a per-epoch callback for the training loop that keeps the classifier's (and
  q-network's) training-set softmax averaged over the epochs in ``RUN/epoch_probs.npz``, which
  ``limitlab detect`` reads when it is there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import metrics, rundir
from ..epoch import predict
from ..errors import LimitlabError

# Every score detect can rank by; each is in [0, 1] except the gradient mismatch (in [0, √2]).
SCORES = ("classifier_disagreement", "classifier_margin", "limit_gradient_mismatch",
          "averaged_disagreement", "averaged_margin")

EPOCH_PROBS = rundir.EPOCH_PROBS


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

    ``on_epoch(probs)`` adds one epoch's outputs (numpy or torch); ``mean`` is their average.
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


class EpochProbs:
    """The classifier's (and a LIMIT run's q-network's) softmax on the training rows, averaged over
    the epochs, kept in ``RUN/epoch_probs.npz`` for ``limitlab detect``.

    Give :meth:`on_epoch` to the training loop as its per-epoch callback
    (``EpochCallback(EpochProbs(out).on_epoch)``). Each call predicts the training rows in eval mode
    (one more pass over them per epoch) and rewrites the file: ``f`` and ``q`` (the means over all
    epochs so far), ``f_to_best`` and ``q_to_best`` (the means over the epochs up to the best one,
    judged like the loop by a strictly higher validation accuracy), ``epochs``, ``last_epoch`` and
    ``best_val_accuracy``. A resumed run continues the file; an epoch already counted is skipped.
    """

    def __init__(self, run_dir: str | Path, batch_size: int = 1024):
        """Continue ``RUN/epoch_probs.npz`` when it exists (``--resume``), else start empty."""
        self.path, self.batch_size = Path(run_dir) / EPOCH_PROBS, batch_size
        self.f, self.q = EpochAverage(), EpochAverage()
        self.saved: dict = {}
        self.last_epoch, self.best_val = 0, -1.0
        if self.path.exists():
            self.saved = read_epoch_probs(self.path)
            self.last_epoch, self.best_val = int(self.saved["last_epoch"]), float(self.saved["best_val_accuracy"])
            for name, avg in (("f", self.f), ("q", self.q)):
                if name in self.saved:
                    avg.total, avg.epochs = self.saved[name] * int(self.saved["epochs"]), int(self.saved["epochs"])

    def on_epoch(self, epoch: int, objective, data, row: dict) -> None:
        """After epoch ``epoch``: add the networks' training-set softmax and rewrite the file."""
        if epoch <= self.last_epoch:
            return
        self.f.on_epoch(predict(objective.classifier, data, data.train, batch_size=self.batch_size, proba=True))
        q_network = getattr(objective, "q_network", None)
        if q_network is not None:
            self.q.on_epoch(predict(q_network, data, data.train, batch_size=self.batch_size, proba=True))
        arrays = {"f": self.f.mean}
        if q_network is not None:
            arrays["q"] = self.q.mean
        if row["val_accuracy"] > self.best_val:
            self.best_val = row["val_accuracy"]
            self.saved.update({f"{k}_to_best": v for k, v in arrays.items()})
        self.last_epoch = epoch
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one writer
            rundir.save_npz(self.path, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()},
                            **{k: np.asarray(v, dtype=np.float32) for k, v in self.saved.items() if k.endswith("_to_best")},
                            epochs=np.int64(self.f.epochs), last_epoch=np.int64(epoch),
                            best_val_accuracy=np.float64(self.best_val))


def read_epoch_probs(path: str | Path) -> dict:
    """The arrays of an ``epoch_probs.npz`` (read without pickle); a damaged file is one LimitlabError sentence."""
    try:
        with np.load(path, allow_pickle=False) as f:
            saved = {k: np.asarray(f[k]) for k in f.files}
        epochs = int(saved["epochs"])
        ok = saved["f"].ndim == 2 and epochs >= 1 and "last_epoch" in saved and "best_val_accuracy" in saved
    except Exception as e:  # truncated or foreign file: zipfile, numpy and KeyError all apply
        raise LimitlabError(f"{path} is truncated or corrupt ({type(e).__name__}); delete it or retrain the run") from None
    if not ok:
        raise LimitlabError(f"{path} does not hold per-epoch averaged probabilities; delete it or retrain the run")
    return {k: (v.astype(np.float64) if v.ndim == 2 else v) for k, v in saved.items()}


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
