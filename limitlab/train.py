"""The training loop: one objective on a run's device data, one epoch at a time, the per-epoch
measurements (docs/method.md §8), early stopping on noisy validation, checkpoints every epoch,
resume, and the GPU fast path (bf16 autocast, channels_last, optional torch.compile, DDP under
torchrun; see :mod:`limitlab.runtime`).

Library use::

    from limitlab import Config, train
    summary = train(Config(dataset="mnist", noise="uniform:0.8", train_size=1000), "runs/x")
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import metrics, rundir
from .config import Config
from .data import table_run
from .data.run import RunData, Split, prepare_data
from .errors import LimitlabError
from .factories import check_output_shape, is_factory_spec
from .methods import METHODS, build_objective
from .models import build_model, default_model, fuse_for_eval, load_weights
from .objectives import Objective
from .runtime import Runtime, start_runtime


# --------------------------------------------------------------------------- objective
def load_classifier_weights(run: str | Path, config: Config, data: RunData, flag: str) -> dict:
    """The best-validation classifier weights (and BatchNorm buffers) of an earlier run, after
    checking that its dataset, architecture and number of classes match this run."""
    path = Path(run) / rundir.BEST
    if not path.exists():
        raise LimitlabError(f"{flag} {run}: no {rundir.BEST} there; point it at a finished CE run directory")
    ckpt = rundir.load_checkpoint(path, keys=("config", "classifier"))
    try:
        source = Config.from_dict(ckpt["config"])
    except LimitlabError as e:
        raise LimitlabError(f"{flag} {run}: the config in {path} is not valid ({e})") from None
    ours, theirs = config.model or default_model(data.input_shape), source.model or default_model(data.input_shape)
    if (source.dataset, theirs) != (config.dataset, ours):
        raise LimitlabError(f"{flag} {run} was trained on {source.dataset} with {theirs}, but this run uses "
                            f"{config.dataset} with {ours}; they must match")
    if not isinstance(ckpt["classifier"], dict):
        raise LimitlabError(f"{flag} {run}: {path} holds no classifier weights; point it at a finished CE run directory")
    head = [v for k, v in ckpt["classifier"].items() if k == "head.weight" and isinstance(v, torch.Tensor)]
    if head and head[0].shape[0] != data.num_classes:
        raise LimitlabError(f"{flag} {run} has {head[0].shape[0]} classes but this run has {data.num_classes}")
    return ckpt["classifier"]


def build_run_objective(config: Config, data: RunData, runtime: Runtime | None = None,
                        ) -> tuple[Objective, dict[str, np.ndarray]]:
    """The run's objective with its networks initialised (``--init-from``, ``--q-init-from``), and
    the extra arrays to save in the run directory (e.g. FW's transition matrix)."""
    runtime = runtime or Runtime(data.scale.device)
    spec = METHODS.get(config.method)
    model_name = config.model or default_model(data.input_shape)
    device = data.scale.device

    def make_model(role, head_bias=True):
        return build_model(model_name, data.input_shape, data.num_classes, role=role, dropout=config.dropout,
                           head_bias=head_bias, pretrained=config.pretrained)

    def predict_proba(model):
        model = fuse_for_eval(model.to(device, memory_format=torch.channels_last))
        return predict(model, data, data.train, batch_size=config.eval_batch_size, runtime=runtime, proba=True).cpu().numpy()

    init = config.init_from and load_classifier_weights(config.init_from, config, data, "--init-from")
    context, extras = spec.prepare(config, data, make_model, init, predict_proba) if spec.prepare else ({}, {})
    context = {"num_train": len(data.train), "num_classes": data.num_classes, **context}
    objective = build_objective(config.method, make_model, config, context)
    if init:
        load_weights(objective.classifier, init, f"--init-from {config.init_from}")
    if config.q_init_from:
        load_weights(objective.q_network, load_classifier_weights(config.q_init_from, config, data, "--q-init-from"),
                     f"--q-init-from {config.q_init_from}")
    objective = objective.to(device, memory_format=torch.channels_last)
    if runtime.distributed and data.scale.is_cuda:
        objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)  # global-batch BN statistics
    return objective, extras


def check_networks(objective: Objective, data: RunData, name: str) -> None:
    """The classifier (and q-network) map a batch of two training inputs to logits [2, K]."""
    x, _ = next(data.batches(data.train, torch.arange(min(2, len(data.train)), device=data.scale.device), 2))
    for net in (objective.classifier, getattr(objective, "q_network", None)):
        if net is not None:
            check_output_shape(net, x, data.num_classes, name)


def make_optimizer(objective: Objective, config: Config, device: torch.device) -> torch.optim.Optimizer:
    """One Adam over all the objective's networks, as one fused update on CPU and CUDA (about 4×
    faster than the per-tensor loop for cnn4 on CPU, benchmarks/RESULTS.md)."""
    return torch.optim.Adam(objective.optimized_parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            fused=device.type in ("cpu", "cuda") or None)


# --------------------------------------------------------------------------- one epoch, evaluation
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
    runtime = runtime or Runtime(data.scale.device)
    model.eval()
    order = torch.arange(runtime.rank, len(split), runtime.world, device=data.scale.device)
    outs = []
    with torch.inference_mode():
        for x, _ in data.batches(split, order, batch_size):
            with runtime.autocast():
                logits = model(x).float()
            outs.append(logits.softmax(1) if proba else logits.argmax(1))
    # clone: an ordinary tensor again (callers may modify it in place)
    local = torch.cat(outs).clone() if outs else torch.zeros((0, data.num_classes) if proba else 0,
                                                             device=data.scale.device)
    if proba:
        return torch.stack([runtime.gather_strided(local[:, k].contiguous(), len(split))
                            for k in range(local.shape[1])], 1)
    return runtime.gather_strided(local, len(split))


def accuracy(model: torch.nn.Module, data: RunData, split: Split, *, batch_size: int,
             runtime: Runtime | None = None) -> float:
    """The accuracy of ``model`` on ``split`` against its labels."""
    return (predict(model, data, split, batch_size=batch_size, runtime=runtime) == split.labels).float().mean().item()


def evaluate(objective: Objective, data: RunData, config: Config, epoch: int, runtime: Runtime,
             model: torch.nn.Module | None = None) -> dict:
    """Per-epoch measurements of the classifier on the training and validation sets (docs/method.md §8).
    The pass over the training set runs every ``train_eval_every`` epochs (0: never). ``model``:
    the network to evaluate, by default a :func:`fuse_for_eval` copy of the objective's classifier."""
    clf = fuse_for_eval(objective.classifier) if model is None else model
    bs = config.eval_batch_size
    out = {k: None for k in ("train_noisy_accuracy", "train_clean_accuracy", "memorized_fraction",
                             "corrected_fraction", "info_lower_bound_bits")}
    if config.train_eval_every and epoch % config.train_eval_every == 0:
        out.update(metrics.label_fit(predict(clf, data, data.train, batch_size=bs, runtime=runtime), data.train.labels, data.train_true))
        out["info_lower_bound_bits"] = metrics.fano_information_lower_bound(
            1.0 - out["train_noisy_accuracy"], data.num_classes, data.noisy_entropy_bits)
    out["val_accuracy"] = accuracy(clf, data, data.val, batch_size=bs, runtime=runtime)
    return out


# --------------------------------------------------------------------------- the run
# A parameter this large means the run has diverged: Adam moves each weight by about lr per step,
# so a healthy run stays orders of magnitude below it (and the loss may still look finite).
MAX_PARAMETER = 1e6


def check_divergence(objective: Objective, losses_: dict[str, float], epoch: int, lr: float, out: Path) -> None:
    """Raise LimitlabError (one sentence) when the epoch's loss is not finite or a parameter is
    non-finite or beyond MAX_PARAMETER. One reduction on the device and one sync per epoch."""
    params = [p.detach() for p in objective.parameters()]
    largest = torch.stack([p.abs().amax().float() for p in params if p.numel()]).amax().item() if params else 0.0
    if all(math.isfinite(v) for v in losses_.values()) and largest <= MAX_PARAMETER:
        return
    what = (f"the loss became {losses_.get('loss')}" if not all(math.isfinite(v) for v in losses_.values())
            else f"a parameter reached {largest:.3g}")
    raise divergence_error(what, epoch, lr, out)


def divergence_error(what: str, epoch: int, lr: float, out: Path) -> LimitlabError:
    """The one-sentence error for a run whose loss or parameters stopped being finite: what, when,
    what to try, and which checkpoint is kept."""
    kept = (f"the last good epoch is in {out / rundir.LAST}" if (out / rundir.LAST).exists()
            else "no epoch completed, so no checkpoint was kept")
    return LimitlabError(f"training diverged: {what} in epoch {epoch}; try a lower --lr (now {lr:g}); {kept}")


def _rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    # .cpu(): a checkpoint loaded with map_location=cuda brings the states onto the GPU
    torch.set_rng_state(state["torch"].cpu())
    generator.set_state(state["shuffle"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _restore(out: Path, objective: Objective, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             device: torch.device) -> tuple[int, dict, int, list[dict]]:
    """Load ``out``'s last.pt into the objective, optimizer and random generators; returns the first
    epoch to run, the best epoch so far, the epochs without improvement and the metrics rows kept."""
    path = out / rundir.LAST
    ckpt = rundir.load_checkpoint(path, map_location=device,
                                  keys=("epoch", "objective", "optimizer", "rng", "best", "bad_epochs"))
    try:
        objective.load_state_dict(ckpt["objective"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], generator, device)
        epoch, best, bad_epochs = int(ckpt["epoch"]), dict(ckpt["best"]), int(ckpt["bad_epochs"])
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LimitlabError(f"checkpoint {path} does not hold the state of this run ({first}); "
                            "start the run again with --overwrite") from None
    history = [r for r in rundir.read_metrics(out) if isinstance(r.get("epoch"), int) and r["epoch"] <= epoch]
    if [r["epoch"] for r in history] != list(range(1, epoch + 1)):
        raise LimitlabError(f"{out / rundir.METRICS} lacks rows of epochs that {path} has finished (epoch {epoch}), "
                            "so the run cannot be resumed exactly; start it again with --overwrite")
    return epoch + 1, best, bad_epochs, history


def _summary(config: Config, history: list[dict], best: dict, data: RunData, stopped_early: bool) -> dict:
    last = history[-1]
    return {
        "method": config.method, "dataset": config.dataset, "noise": config.noise, "seed": config.seed,
        "test_accuracy": best["test_accuracy"], "best_epoch": best["epoch"],
        "best_val_accuracy": best["val_accuracy"],
        "final_test_accuracy": last["test_accuracy"],
        "final_train_noisy_accuracy": last["train_noisy_accuracy"],
        "final_train_clean_accuracy": last["train_clean_accuracy"],
        "memorized_fraction": last["memorized_fraction"], "corrected_fraction": last["corrected_fraction"],
        "info_lower_bound_bits": last["info_lower_bound_bits"],
        "train_noise_rate": float(data.record["train_rate"]), "val_noise_rate": float(data.record["val_rate"]),
        "train_size": len(data.train), "epochs_run": last["epoch"], "stopped_early": stopped_early,
        "seconds": sum(h["seconds"] for h in history),
    }


def train(config: Config, out: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
          on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train one run into the run directory ``out`` and return its summary (also in summary.json).

    Everything that can be checked (config, data, noise, model) is checked before ``out`` is touched.
    With ``resume``, the run continues from ``checkpoints/last.pt`` under its saved config (only
    ``config.device`` is taken from the caller) and ends with the same numbers as an uninterrupted run. ``on_epoch_end(row)`` is called after each epoch's files are written.
    Under torchrun (WORLD_SIZE > 1) every process trains its share; only rank 0 writes files.
    """
    out = Path(out)
    if resume:  # the run continues under its saved config; only the device is the caller's
        rundir.prepare_run_dir(out, resume=True, overwrite=False)
        saved = Config.load(out / rundir.CONFIG)
        config = dataclasses.replace(saved, device=config.device, data_dir=config.data_dir or saved.data_dir)
    config.validate()
    runtime = start_runtime(config)
    device = runtime.device
    data = prepare_data(config, device, run_dir=out if resume else None)
    torch.manual_seed(config.seed)
    objective, extras = build_run_objective(config, data, runtime)
    if is_factory_spec(config.model):  # a user's network: check its output on one batch before writing
        check_networks(objective, data, config.model)
    optimizer = make_optimizer(objective, config, device)
    generator = torch.Generator().manual_seed(config.seed)
    step = objective
    if runtime.distributed:
        step = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=METHODS.get(config.method).idle_parameters(config))  # e.g. LIMIT's warm-up
    if config.compile:
        step = torch.compile(step)

    main = runtime.is_main
    created = None
    if main:
        created = rundir.prepare_run_dir(out, resume=resume, overwrite=overwrite)
    runtime.barrier()
    with rundir.writing(out, fresh=not resume, created=created) if main else contextlib.nullcontext():
        start_epoch, best, bad_epochs, history = 1, {"val_accuracy": -1.0, "epoch": 0, "test_accuracy": None}, 0, []
        if resume and (out / rundir.LAST).exists():
            start_epoch, best, bad_epochs, history = _restore(out, objective, optimizer, generator, device)
        if main:
            rundir.write_json(out / rundir.CONFIG, config.to_dict())
            rundir.save_npz(out / rundir.NOISY_LABELS, **data.record)
            if data.table is not None:  # a .csv/.parquet table: its source and encoding summary
                rundir.write_json(out / rundir.TABLE, data.table)
                if progress and not resume:
                    table_run.show(data.table)
            for name, array in extras.items():
                rundir.atomic_write_bytes(rundir.extra_file(out, name), _csv(array))
            rundir.write_metrics(out, history)  # drops rows of an epoch whose checkpoint was never written

        stopped_early = config.patience is not None and bad_epochs >= config.patience
        bar = _progress(range(start_epoch, config.epochs + 1), config, progress and main, initial=start_epoch - 1)
        for epoch in bar:
            if stopped_early:
                break
            t0 = time.perf_counter()
            objective.start_epoch(epoch)
            try:
                losses_ = train_one_epoch(objective, optimizer, data, batch_size=config.batch_size, generator=generator,
                                          runtime=runtime, step=step)
            except RuntimeError as e:
                if "overflow" not in str(e):
                    raise
                raise divergence_error("the optimizer step overflowed", epoch, config.lr, out) from None
            train_seconds = time.perf_counter() - t0
            check_divergence(objective, losses_, epoch, config.lr, out)
            eval_model = fuse_for_eval(objective.classifier)  # once per epoch, for every evaluation pass
            row = {"epoch": epoch, **{f"train_{k}": v for k, v in losses_.items()},
                   **evaluate(objective, data, config, epoch, runtime, eval_model)}
            improved = row["val_accuracy"] > best["val_accuracy"]
            bad_epochs = 0 if improved else bad_epochs + 1
            stopped_early = config.patience is not None and bad_epochs >= config.patience
            # The reported number is the test accuracy at the best epoch, so the test pass runs at a new
            # best and at the last epoch; --test-every k adds every k-th epoch (per-epoch curves).
            test_now = data.test is not None and (improved or epoch == config.epochs or stopped_early
                                                  or (config.test_every > 0 and epoch % config.test_every == 0))
            row["test_accuracy"] = (accuracy(eval_model, data, data.test, batch_size=config.eval_batch_size,
                                             runtime=runtime)
                                    if test_now else None)
            row["train_seconds"] = train_seconds
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if improved:
                best = {k: row[k] for k in ("epoch", "val_accuracy", "test_accuracy")}
            if main:
                if improved:
                    rundir.save_torch(out / rundir.BEST, {
                        "epoch": epoch, "classifier": objective.classifier.state_dict(),
                        "objective": objective.state_dict(), "config": config.to_dict()})
                rundir.append_metrics(out, row)
                rundir.save_torch(out / rundir.LAST, {
                    "epoch": epoch, "objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                    "rng": _rng_state(generator, device), "best": best, "bad_epochs": bad_epochs,
                    "config": config.to_dict()})
            if progress and main:
                best_test = "-" if best["test_accuracy"] is None else f"{best['test_accuracy']:.3f}"
                bar.set_postfix(val=f"{row['val_accuracy']:.3f}", best_test=best_test, best_epoch=best["epoch"])
            if on_epoch_end is not None:
                on_epoch_end(row)

        summary = _summary(config, history, best, data, stopped_early)
        if main:
            rundir.write_json(out / rundir.SUMMARY, summary)
    runtime.barrier()
    return summary


def _csv(array: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in np.atleast_2d(array)).encode()


def _progress(epochs, config: Config, enabled: bool, initial: int):
    if not enabled:
        return epochs
    from tqdm.auto import tqdm

    return tqdm(epochs, total=config.epochs, initial=initial, desc=f"{config.method} {config.dataset}",
                unit="epoch", dynamic_ncols=True, leave=False,
                disable=None)  # None: shown on a terminal, silent in logs
