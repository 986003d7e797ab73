"""The accumulator of a classifier's probabilities over a run's epochs, for detection's averaged
scores (:mod:`limitlab.analysis.scores`, docs/detection.md).

- :class:`EpochAverage`: the mean of the softmax outputs on the training rows over the epochs it
  is shown (``on_epoch``); the averaged probabilities are the in-sample signal that a 2025 benchmark
  of noisy-label detectors (Pickler et al.) found strongest, together with margins.
- :class:`EpochProbs`: a per-epoch callback for the training loop that keeps the classifier's (and
  q-network's) training-set softmax averaged over the epochs in ``RUN/epoch_probs.npz``, which
  ``limitlab detect`` reads when it is there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import rundir
from .epoch import predict
from .errors import LimitlabError
from .loop import Callback

EPOCH_PROBS = rundir.EPOCH_PROBS

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


class EpochProbs(Callback):
    """The classifier's (and a LIMIT run's q-network's) softmax on the training rows, averaged over
    the epochs, kept in ``RUN/epoch_probs.npz`` for ``limitlab detect``.

    Give it to the training loop as a callback (``train(..., callbacks=[EpochProbs(out)])``): it then
    takes the classifier's outputs from the epoch's own evaluation pass over the training rows, and
    predicts them itself only in epochs without one (``train_eval_every``) and for a q-network.
    (:meth:`on_epoch` also serves as an ``EpochCallback`` function, predicting every epoch.) Each
    epoch rewrites the file: ``f`` and ``q`` (the means over all
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

    def on_train_begin(self, loop) -> None:
        loop.keep_train_probs = True  # the evaluation pass over the training rows keeps its softmax

    def on_epoch_end(self, loop, row: dict, improved: bool) -> None:
        self.on_epoch(row["epoch"], loop.objective, loop.data, row, probs_f=loop.train_probs)

    def on_epoch(self, epoch: int, objective, data, row: dict, probs_f=None) -> None:
        """After epoch ``epoch``: add the networks' training-set softmax (``probs_f``: the classifier's,
        when the caller has it; else predicted here) and rewrite the file."""
        if epoch <= self.last_epoch:
            return
        if probs_f is None:
            probs_f = predict(objective.classifier, data, data.train, batch_size=self.batch_size, proba=True)
        self.f.on_epoch(probs_f)
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
