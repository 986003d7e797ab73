"""A run of ``limitlab train``: its objective and optimizer, and its run directory (checkpoints every
epoch, resume) around the shared epoch loop (:mod:`limitlab.loop`: the per-epoch measurements,
docs/method.md §8, early stopping on noisy validation), and the GPU fast path (bf16 autocast, channels_last, optional torch.compile, DDP under
torchrun; see :mod:`limitlab.runtime`).

Library use::

    from limitlab import Config, train
    summary = train(Config(dataset="mnist", noise="uniform:0.8", train_size=1000), "runs/x")
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import rundir
from .config import Config
from .data import table_run
from .data.run import RunData, prepare_data
from .epoch import accuracy, evaluate, predict, train_one_epoch
from .epoch_probs import EpochProbs
from .errors import LimitlabError, first_line
from .factories import check_output_shape, is_factory_spec
from .loop import MAX_PARAMETER, Callback, EpochCallback, Loop, ProgressBar, divergence, run_epochs
from .methods import METHODS, build_objective
from .models import build_model, default_model, fuse_for_eval, load_weights
from .objectives import Objective
from .runtime import Runtime, start_runtime

# Re-exported: the epoch and evaluation functions and the loop's pieces, as before they moved.
__all__ = ["train", "predict", "accuracy", "evaluate", "train_one_epoch", "build_run_objective", "make_optimizer",
           "check_networks", "load_classifier_weights", "RunDirectory", "Callback", "EpochCallback", "MAX_PARAMETER",
           "divergence"]


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


# --------------------------------------------------------------------------- the run directory
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


def _restore(out: Path, loop: Loop) -> None:
    """Load ``out``'s last.pt into the loop's objective, optimizer and random generators, and set
    the next epoch, the best epoch so far, the epochs without improvement and the metrics rows kept."""
    path, device = out / rundir.LAST, loop.runtime.device
    ckpt = rundir.load_checkpoint(path, map_location=device,
                                  keys=("epoch", "objective", "optimizer", "rng", "best", "bad_epochs"))
    try:
        loop.objective.load_state_dict(ckpt["objective"])
        loop.optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"], loop.generator, device)
        epoch, best, bad_epochs = int(ckpt["epoch"]), dict(ckpt["best"]), int(ckpt["bad_epochs"])
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise LimitlabError(f"checkpoint {path} does not hold the state of this run ({first_line(e)}); "
                            "start the run again with --overwrite") from None
    history = [r for r in rundir.read_metrics(out) if isinstance(r.get("epoch"), int) and r["epoch"] <= epoch]
    if [r["epoch"] for r in history] != list(range(1, epoch + 1)):
        raise LimitlabError(f"{out / rundir.METRICS} lacks rows of epochs that {path} has finished (epoch {epoch}), "
                            "so the run cannot be resumed exactly; start it again with --overwrite")
    loop.epoch, loop.best, loop.bad_epochs, loop.history = epoch + 1, best, bad_epochs, history


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


class RunDirectory(Callback):
    """The run directory's side of the loop: on resume, the state of ``checkpoints/last.pt``; at the
    start, config.json, noisy_labels.npz and the method's extra arrays; after each epoch, the metrics
    row and the checkpoints (best.pt at a new best); at the end, summary.json. Off rank 0 it only
    restores (every process resumes) and writes nothing."""

    def __init__(self, out: Path, extras: dict[str, np.ndarray], resume: bool, main: bool):
        self.out, self.extras, self.resume, self.main = out, extras, resume, main
        self.summary: dict | None = None

    def on_train_begin(self, loop):
        out = self.out
        if self.resume and (out / rundir.LAST).exists():
            _restore(out, loop)
        if self.main:
            rundir.write_json(out / rundir.CONFIG, loop.config.to_dict())
            rundir.save_npz(out / rundir.NOISY_LABELS, **loop.data.record)
            if loop.data.table is not None:  # a .csv/.parquet table: its source, checksum and encoding
                rundir.write_json(out / rundir.TABLE, loop.data.table)
            for name, array in self.extras.items():
                rundir.atomic_write_bytes(rundir.extra_file(out, name), _csv(array))
            rundir.write_metrics(out, loop.history)  # drops rows of an epoch whose checkpoint was never written

    def on_epoch_end(self, loop, row, improved):
        if not self.main:
            return
        config, objective, epoch = loop.config, loop.objective, row["epoch"]
        if improved:
            rundir.save_torch(self.out / rundir.BEST, {
                "epoch": epoch, "classifier": objective.classifier.state_dict(),
                "objective": objective.state_dict(), "config": config.to_dict()})
        rundir.append_metrics(self.out, row)
        rundir.save_torch(self.out / rundir.LAST, {
            "epoch": epoch, "objective": objective.state_dict(), "optimizer": loop.optimizer.state_dict(),
            "rng": _rng_state(loop.generator, loop.runtime.device), "best": loop.best, "bad_epochs": loop.bad_epochs,
            "config": config.to_dict()})

    def on_train_end(self, loop):
        self.summary = _summary(loop.config, loop.history, loop.best, loop.data, loop.stopped_early)
        if self.main:
            rundir.write_json(self.out / rundir.SUMMARY, self.summary)

    def divergence_note(self, loop):
        return (f"the last good epoch is in {self.out / rundir.LAST}" if (self.out / rundir.LAST).exists()
                else "no epoch completed, so no checkpoint was kept")


def train(config: Config, out: str | Path, resume: bool = False, overwrite: bool = False, progress: bool = True,
          on_epoch_end: Callable[[dict], None] | None = None, callbacks: Sequence[Callback] = ()) -> dict:
    """Train one run into the run directory ``out`` and return its summary (also in summary.json).

    Everything that can be checked (config, data, noise, model) is checked before ``out`` is touched.
    With ``resume``, the run continues from ``checkpoints/last.pt`` under its saved config (only
    ``config.device`` is taken from the caller) and ends with the same numbers as an uninterrupted
    run. ``on_epoch_end(row)`` is called after each epoch's files are written, and so are the
    ``callbacks`` (:class:`limitlab.loop.Callback`, e.g. ``EpochCallback(fn)`` with
    ``fn(epoch, objective, data, row)``). Under torchrun (WORLD_SIZE > 1) every process trains its
    share; only rank 0 writes files.
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
    if data.table is not None and progress and not resume and runtime.is_main:
        table_run.show(data.table)  # the encoding summary, once
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
    loop = Loop(objective, optimizer, data, config, runtime, generator, step=step,
                network=config.model if is_factory_spec(config.model) else None)
    directory = RunDirectory(out, extras, resume, main)
    # Methods without a q-network: detect ranks by the margin of the classifier's probabilities averaged
    # over the epochs (epoch_probs.npz; benchmarks/RESULTS.md, "Which detection score"), taken from the
    # evaluation pass over the training rows. LIMIT's score needs none of it.
    averaged = [] if METHODS.get(config.method).has_q_network else [EpochProbs(out)]
    hooks = [directory, *averaged, *([ProgressBar(f"{config.method} {config.dataset}")] if progress and main else []),
             *([EpochCallback(lambda epoch, objective, data, row: on_epoch_end(row))] if on_epoch_end else []),
             *callbacks]
    with rundir.writing(out, fresh=not resume, created=created) if main else contextlib.nullcontext():
        run_epochs(loop, hooks)
    runtime.barrier()
    return directory.summary


def _csv(array: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in np.atleast_2d(array)).encode()
