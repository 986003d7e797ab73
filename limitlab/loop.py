"""The epoch loop shared by ``limitlab train`` (:func:`limitlab.train.train`) and
:meth:`limitlab.LimitClassifier.fit`: a training epoch, the divergence checks, the evaluation
passes, early stopping on the (noisy) validation accuracy and the best-epoch bookkeeping.

What differs between the entry points comes in as :class:`Callback` objects (in the manner of
skorch's callbacks and Lightning's hooks): the run directory (config and labels at the start,
checkpoints and metrics each epoch, the summary at the end, resume; :class:`limitlab.train.RunDirectory`),
the best weights kept in memory (:class:`BestWeightsInMemory`, the estimator), a progress bar
(:class:`ProgressBar`) and any per-epoch measurement (:class:`EpochCallback`)::

    loop = Loop(objective, optimizer, data, config, runtime, generator)
    run_epochs(loop, [BestWeightsInMemory(), EpochCallback(lambda epoch, objective, data, row: ...)])
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .config import Config
from .data.run import RunData
from .epoch import accuracy, evaluate, train_one_epoch
from .errors import LimitlabError, first_line
from .models import fuse_for_eval
from .objectives import Objective
from .runtime import Runtime

# A parameter this large means the run has diverged: Adam moves each weight by about lr per step,
# so a healthy run stays orders of magnitude below it (and the loss may still look finite).
MAX_PARAMETER = 1e6
# Measurements that need the true labels of the training split (the estimator may not have them).
NEEDS_TRUTH = ("train_clean_accuracy", "memorized_fraction", "corrected_fraction", "info_lower_bound_bits")


@dataclass
class Loop:
    """The state of one training run, which the callbacks read and (on resume) set.

    ``epoch`` is the next epoch to run; ``best`` holds the best epoch so far (``epoch``,
    ``val_accuracy``, ``test_accuracy``); ``history`` one metrics row per finished epoch.
    ``network`` names a user's own network (a factory): an error raised inside it becomes one
    sentence (the traceback with ``LIMITLAB_DEBUG=1``). ``lr_name`` is how the learning rate is
    called in messages (``--lr`` or ``lr``); ``truth_known``: the training split's true labels are
    known, so the memorization measurements mean something. With ``keep_train_probs`` (set by a
    callback that needs them) an epoch whose evaluation passes over the training split leaves the
    classifier's softmax outputs of that pass in ``train_probs`` (None in other epochs)."""

    objective: Objective
    optimizer: torch.optim.Optimizer  # or any with zero_grad() and step(): limitlab.onecycle.Adam
    data: RunData
    config: Config
    runtime: Runtime
    generator: torch.Generator
    step: Callable | None = None
    network: str | None = None
    lr_name: str = "--lr"
    truth_known: bool = True
    epoch: int = 1
    best: dict = field(default_factory=lambda: {"val_accuracy": -1.0, "epoch": 0, "test_accuracy": None})
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    keep_train_probs: bool = False   # a callback wants the classifier's softmax on the training split
    train_probs: torch.Tensor | None = None  # that softmax [N, K] from this epoch's evaluation pass, else None


class Callback:
    """Hooks of :func:`run_epochs`; each does nothing unless overridden."""

    def on_train_begin(self, loop: Loop) -> None:
        """Before the first epoch (a resume restores ``loop``'s state here)."""

    def on_epoch_end(self, loop: Loop, row: dict, improved: bool) -> None:
        """After an epoch's row is in ``loop.history`` and ``loop.best`` is updated."""

    def on_train_end(self, loop: Loop) -> None:
        """After the last epoch (not after an error)."""

    def divergence_note(self, loop: Loop) -> str | None:
        """What is kept when the run diverges, for the error's sentence."""
        return None


class EpochCallback(Callback):
    """``fn(epoch, objective, data, row)`` after every epoch (e.g. to average per-epoch predictions)."""

    def __init__(self, fn: Callable[[int, Objective, RunData, dict], None]):
        self.fn = fn

    def on_epoch_end(self, loop, row, improved):
        self.fn(row["epoch"], loop.objective, loop.data, row)


class BestWeightsInMemory(Callback):
    """Keeps a copy of the objective's state at each new best epoch and restores it at the end.
    Without validation rows every epoch is the best and the last one is kept: no copy is made."""

    def __init__(self):
        self.state = None

    def on_epoch_end(self, loop, row, improved):
        if improved and len(loop.data.val) > 0:
            self.state = copy.deepcopy(loop.objective.state_dict())

    def on_train_end(self, loop):
        if self.state is not None:
            loop.objective.load_state_dict(self.state)


class ProgressBar(Callback):
    """A tqdm bar over the epochs: shown on a terminal and silent in logs, or (``always``) shown
    wherever tqdm can draw it (a notebook too)."""

    def __init__(self, description: str, always: bool = False):
        self.description, self.always, self.bar = description, always, None

    def on_train_begin(self, loop):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=loop.config.epochs, initial=loop.epoch - 1, desc=self.description, unit="epoch",
                        dynamic_ncols=True, leave=False, disable=False if self.always else None)

    def on_epoch_end(self, loop, row, improved):
        best_test = loop.best["test_accuracy"]
        val = row["val_accuracy"]
        self.bar.update(1)
        self.bar.set_postfix(val="-" if val is None else f"{val:.3f}",
                             best_test="-" if best_test is None else f"{best_test:.3f}", best_epoch=loop.best["epoch"])

    def on_train_end(self, loop):
        self.bar.close()


def divergence(objective: torch.nn.Module, losses: dict[str, float]) -> str | None:
    """What went wrong when the epoch's loss is not finite or a parameter is non-finite or beyond
    MAX_PARAMETER, else None. One reduction on the device and one sync per epoch."""
    params = [p.detach() for p in objective.parameters()]
    largest = torch.stack([p.abs().amax().float() for p in params if p.numel()]).amax().item() if params else 0.0
    if not all(math.isfinite(v) for v in losses.values()):
        return f"the loss became {losses.get('loss')}"
    return None if largest <= MAX_PARAMETER else f"a parameter reached {largest:.3g}"


def _diverged(loop: Loop, callbacks: Sequence[Callback], what: str) -> LimitlabError:
    notes = [n for n in (cb.divergence_note(loop) for cb in callbacks) if n]
    return LimitlabError(f"training diverged: {what} in epoch {loop.epoch}; try a lower {loop.lr_name} "
                         f"(now {loop.config.lr:g})" + "".join(f"; {n}" for n in notes))


def _network_error(loop: Loop, e: Exception, during: str) -> LimitlabError:
    return LimitlabError(f"model {loop.network} raised an error while {during} in epoch {loop.epoch} "
                         f"({first_line(e)}); set LIMITLAB_DEBUG=1 for the full traceback")


def _guarded(loop: Loop, during: str, fn: Callable):
    """``fn()``, with an error raised inside a user's network turned into one sentence."""
    if loop.network is None or os.environ.get("LIMITLAB_DEBUG") == "1":
        return fn()
    try:
        return fn()
    except LimitlabError:
        raise
    except Exception as e:
        if isinstance(e, RuntimeError) and "overflow" in str(e):  # the optimizer's, not the network's
            raise
        raise _network_error(loop, e, during) from None


def run_epochs(loop: Loop, callbacks: Sequence[Callback] = ()) -> Loop:
    """Train from ``loop.epoch`` to ``config.epochs``, stopping early after ``config.patience``
    epochs without a better validation accuracy; returns ``loop`` with its history and best epoch.

    Without validation rows every epoch counts as the best (the last one is kept), and an epoch with
    no validation rows, no test split and no pass over the training split due runs no evaluation
    (its row has None for those measurements). The test pass
    (when the data have a test split) runs at a new best, at the last epoch and every
    ``config.test_every`` epochs. Raises LimitlabError (one sentence) when the run diverges."""
    config, data, runtime, objective = loop.config, loop.data, loop.runtime, loop.objective
    has_val = len(data.val) > 0
    for cb in callbacks:
        cb.on_train_begin(loop)
    loop.stopped_early = config.patience is not None and loop.bad_epochs >= config.patience
    for epoch in range(loop.epoch, config.epochs + 1):
        if loop.stopped_early:
            break
        loop.epoch = epoch
        t0 = time.perf_counter()
        loop.train_probs = None
        objective.start_epoch(epoch)
        try:
            losses = _guarded(loop, "training", lambda: train_one_epoch(
                objective, loop.optimizer, data, batch_size=config.batch_size, generator=loop.generator,
                runtime=runtime, step=loop.step))
        except RuntimeError as e:
            if "overflow" not in str(e):
                raise
            raise _diverged(loop, callbacks, "the optimizer step overflowed") from None
        train_seconds = time.perf_counter() - t0
        what = divergence(objective, losses)
        if what:
            raise _diverged(loop, callbacks, what)
        row = {"epoch": epoch, **{f"train_{k}": v for k, v in losses.items()}}
        if has_val or data.test is not None or (config.train_eval_every and epoch % config.train_eval_every == 0):
            eval_model = fuse_for_eval(objective.classifier)  # once per epoch, for every evaluation pass
            kept = [] if loop.keep_train_probs else None
            row.update(_guarded(loop, "evaluating", lambda: evaluate(objective, data, config, epoch, runtime,
                                                                     eval_model, train_probs=kept)))
            loop.train_probs = kept[0] if kept else None
        else:  # no evaluation pass would measure anything this epoch: skip it (and the fused copy)
            row.update(dict.fromkeys(("train_noisy_accuracy", *NEEDS_TRUTH, "val_accuracy")))
        if not loop.truth_known:
            row.update(dict.fromkeys(NEEDS_TRUTH))
        if not has_val:
            row["val_accuracy"] = None
        improved = not has_val or row["val_accuracy"] > loop.best["val_accuracy"]
        loop.bad_epochs = 0 if improved else loop.bad_epochs + 1
        loop.stopped_early = config.patience is not None and loop.bad_epochs >= config.patience
        # The reported number is the test accuracy at the best epoch, so the test pass runs at a new
        # best and at the last epoch; --test-every k adds every k-th epoch (per-epoch curves).
        test_now = data.test is not None and (improved or epoch == config.epochs or loop.stopped_early
                                              or (config.test_every > 0 and epoch % config.test_every == 0))
        row["test_accuracy"] = (_guarded(loop, "evaluating", lambda: accuracy(
            eval_model, data, data.test, batch_size=config.eval_batch_size, runtime=runtime)) if test_now else None)
        row["train_seconds"] = train_seconds
        row["seconds"] = time.perf_counter() - t0
        loop.history.append(row)
        if improved:
            loop.best = {"epoch": epoch, "val_accuracy": row["val_accuracy"], "test_accuracy": row["test_accuracy"]}
        for cb in callbacks:
            cb.on_epoch_end(loop, row, improved)
    for cb in callbacks:
        cb.on_train_end(loop)
    return loop
