"""One epoch of training and the evaluation passes: :func:`train_one_epoch` (shuffled batches of the
training split, one optimizer step each), :func:`predict`, :func:`accuracy` and :func:`evaluate`
(the per-epoch measurements, docs/method.md §8). :mod:`limitlab.loop` runs them epoch after epoch."""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import metrics
from .config import Config
from .data.run import RunData, Split
from .models import fuse_for_eval
from .objectives import Objective
from .runtime import Runtime


def train_one_epoch(objective: Objective, optimizer: torch.optim.Optimizer, data: RunData, *, batch_size: int,
                    generator: torch.Generator, runtime: Runtime | None = None,
                    step: Callable | None = None) -> dict[str, float]:
    """One pass over the training set in shuffled batches; returns the epoch means of the loss parts.

    Under DDP every process draws the same global order and takes its share ``rank::world`` of
    each global batch. A last batch of one example is skipped (BatchNorm cannot train on it).
    ``step`` is the (possibly DDP-wrapped or compiled) forward; it defaults to ``objective``.
    """
    runtime = runtime or Runtime(data.scale.device)
    step = objective if step is None else step  # (a compiled module has no truth value)
    objective.train()
    n = len(data.train)
    order = torch.randperm(n, generator=generator).to(data.scale.device)
    if runtime.world > 1:  # this process's share of every global batch, in the same batch order
        order = torch.cat([order[s:s + batch_size][runtime.rank::runtime.world] for s in range(0, n, batch_size)])
        batch_size = math.ceil(batch_size / runtime.world)
    sums: dict[str, torch.Tensor] = {}
    seen = torch.zeros((), device=data.scale.device)
    for x, idx in data.batches(data.train, order, batch_size, train=True, generator=generator):
        if len(idx) < 2:
            continue
        with runtime.autocast():
            loss, _ = step(x, data.train.labels[idx], idx) if objective.uses_index else step(x, data.train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        objective.after_step()
        # Accumulate on the device; one sync per epoch, not per step.
        for k, v in {"loss": loss.detach(), **objective.parts}.items():
            sums[k] = sums.get(k, 0) + v.float() * len(idx)
        seen += len(idx)
    keys = sorted(sums)
    totals = runtime.sum(torch.stack([sums[k] for k in keys] + [seen]))
    return {k: (v / totals[-1]).item() for k, v in zip(keys, totals[:-1])}


def predict(model: torch.nn.Module, data: RunData, split: Split, *, batch_size: int, runtime: Runtime | None = None,
            proba: bool = False) -> torch.Tensor:
    """Predicted classes [N] (or softmax outputs [N, K] with ``proba``) of ``model`` in eval mode
    (pass :func:`limitlab.models.fuse_for_eval`'s copy for speed). Under DDP each process predicts
    the shard ``rank::world`` and the shards are gathered."""
    classes, probs = predict_outputs(model, data, split, batch_size=batch_size, runtime=runtime,
                                     classes=not proba, proba=proba)
    return probs if proba else classes


def predict_outputs(model: torch.nn.Module, data: RunData, split: Split, *, batch_size: int,
                    runtime: Runtime | None = None, classes: bool = True, proba: bool = True,
                    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(predicted classes [N], softmax outputs [N, K]) of ``model`` from one pass over ``split`` (each
    None unless asked for); the classes are the argmax of the logits, as :func:`predict` gives them."""
    runtime = runtime or Runtime(data.scale.device)
    model.eval()
    order = torch.arange(runtime.rank, len(split), runtime.world, device=data.scale.device)
    argmaxes, softmaxes = [], []
    with torch.inference_mode():
        for x, _ in data.batches(split, order, batch_size):
            with runtime.autocast():
                logits = model(x).float()
            if classes:
                argmaxes.append(logits.argmax(1))
            if proba:
                softmaxes.append(logits.softmax(1))
    device = data.scale.device
    # clone: an ordinary tensor again (callers may modify it in place)
    local_classes = torch.cat(argmaxes).clone() if argmaxes else torch.zeros(0, device=device)
    local_probs = torch.cat(softmaxes).clone() if softmaxes else torch.zeros((0, data.num_classes), device=device)
    return (runtime.gather_strided(local_classes, len(split)) if classes else None,
            torch.stack([runtime.gather_strided(local_probs[:, k].contiguous(), len(split))
                         for k in range(local_probs.shape[1])], 1) if proba else None)


def accuracy(model: torch.nn.Module, data: RunData, split: Split, *, batch_size: int,
             runtime: Runtime | None = None) -> float:
    """The accuracy of ``model`` on ``split`` against its labels."""
    return (predict(model, data, split, batch_size=batch_size, runtime=runtime) == split.labels).float().mean().item()


def evaluate(objective: Objective, data: RunData, config: Config, epoch: int, runtime: Runtime,
             model: torch.nn.Module | None = None, train_probs: list | None = None) -> dict:
    """Per-epoch measurements of the classifier on the training and validation sets (docs/method.md §8).
    The pass over the training set runs every ``train_eval_every`` epochs (0: never). ``model``:
    the network to evaluate, by default a :func:`fuse_for_eval` copy of the objective's classifier.
    ``train_probs``: a list that gets the softmax outputs [N, K] of that training pass appended (the
    same pass, so that a per-epoch average of them costs no second one)."""
    clf = fuse_for_eval(objective.classifier) if model is None else model
    bs = config.eval_batch_size
    out = {k: None for k in ("train_noisy_accuracy", "train_clean_accuracy", "memorized_fraction",
                             "corrected_fraction", "info_lower_bound_bits")}
    if config.train_eval_every and epoch % config.train_eval_every == 0:
        classes, probs = predict_outputs(clf, data, data.train, batch_size=bs, runtime=runtime,
                                         proba=train_probs is not None)
        if train_probs is not None:
            train_probs.append(probs)
        out.update(metrics.label_fit(classes, data.train.labels, data.train_true))
        out["info_lower_bound_bits"] = metrics.fano_information_lower_bound(
            1.0 - out["train_noisy_accuracy"], data.num_classes, data.noisy_entropy_bits)
    out["val_accuracy"] = accuracy(clf, data, data.val, batch_size=bs, runtime=runtime)
    return out
