"""The training loop: data on the device, one objective, early stopping on noisy validation,
checkpoints every epoch, resume, the per-epoch measurements of SPEC §8, and the GPU fast path
(bf16 autocast, channels_last, optional torch.compile, DDP under torchrun).

Library use::

    from limitlab import Config, train
    summary = train(Config(dataset="mnist", noise="uniform:0.8", train_size=1000), "runs/x")
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from . import losses, metrics, noise, rundir
from .config import Config
from .data import load_dataset, resolve_data_dir, split_train_val
from .data.augment import random_crop_flip
from .errors import LimitlabError
from .factories import check_output_shape, is_factory_spec
from .models import build_model
from .objectives import METHODS, Objective, build_objective


# --------------------------------------------------------------------------- devices and processes
@dataclass
class Runtime:
    """Where this process runs: its device, and its rank among ``world`` DDP processes."""

    device: torch.device
    rank: int = 0
    world: int = 1
    precision: str = "fp32"  # "bf16": autocast on CUDA

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over processes (identity without DDP)."""
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def gather_strided(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Reassemble an [N] result computed as shards ``rank::world`` on each process."""
        if self.world == 1:
            return local
        size = math.ceil(n / self.world)
        padded = torch.zeros(size, dtype=local.dtype, device=local.device)
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.stack(parts, 1).reshape(-1)[:n]

    def barrier(self):
        if self.world > 1:
            dist.barrier()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LimitlabError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LimitlabError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return device


def start_runtime(config: Config) -> Runtime:
    """One process, or one of WORLD_SIZE processes started by torchrun (DDP: NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(config.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rank = dist.get_rank() if world > 1 else 0
    return Runtime(device, rank, world, precision)


# --------------------------------------------------------------------------- data
def default_model(input_shape: tuple[int, ...]) -> str:
    h, w = input_shape[1:]
    if (h, w) == (28, 28):
        return "cnn4"
    if h >= 32 and input_shape[0] == 3:
        return "resnet34" if h <= 64 else "resnet50"
    return "mlp"


@dataclass
class Split:
    """One split on the training device: the labels it is scored against, and its images, either
    uint8 [N, C, H, W] in device memory or a list of image files read by a streaming loader."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    files: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class RunData:
    """A run's data (SPEC §5): training labels are the noisy ones, the only labels training sees."""

    train: Split
    train_true: torch.Tensor     # true labels of the training examples (= given labels for real noise)
    val: Split
    test: Split | None
    num_classes: int
    input_shape: tuple[int, ...]
    scale: torch.Tensor          # x_float = x_uint8 * scale - shift, per channel (normalisation folded in)
    shift: torch.Tensor
    noisy_entropy_bits: float    # H(ỹ|x) of the training labels, for the information bound
    record: dict                 # what noisy_labels.npz stores
    augmentation: str | None = None
    file_options: dict | None = None  # root, resize, image_size, workers for streamed splits

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        # A float copy (stored float features must not change), normalised in place; scale and shift
        # broadcast per channel [C, 1, 1] for images, per feature [D] for tables. channels_last:
        # measured ~20% faster for cnn4 on CPU too; image batches only.
        x = images.to(torch.float32, copy=True).mul_(self.scale).sub_(self.shift)
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    def batches(self, split: Split, order: torch.Tensor, batch_size: int, train: bool = False,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (normalised inputs on the device, their indices into ``split``) over ``order``.

        In-memory splits are index slices, with crop/flip done batch-wise on the device for
        training when the dataset asks for it; file splits stream through a DataLoader.
        """
        if split.images is not None:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                images = split.images[idx]
                if train and self.augmentation == "crop-flip":
                    images = random_crop_flip(images, padding=4, generator=generator)
                yield self.to_input(images), idx
            return
        from torch.utils.data import DataLoader, Subset

        from .data.files import ImageFiles

        opts = self.file_options
        dataset = ImageFiles(opts["root"], split.files, split.labels.cpu().numpy(), train=train,
                             resize=opts["resize"], image_size=opts["image_size"])
        loader = DataLoader(Subset(dataset, order.cpu().tolist()), batch_size=batch_size, shuffle=False,
                            num_workers=opts["workers"], pin_memory=self.scale.is_cuda,
                            persistent_workers=False)
        device = self.scale.device
        for images, _, idx in loader:
            yield self.to_input(images.to(device, non_blocking=True)), idx.to(device, non_blocking=True)


def prepare_data(config: Config, device: torch.device) -> RunData:
    """Load, split (seeded 80/20 + optional subset), corrupt, and move the data to ``device``."""
    data = load_dataset(config.dataset, config.data_dir)
    as_labels = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64, device=device)  # noqa: E731
    mean = torch.tensor(data.mean, dtype=torch.float32, device=device).view(-1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32, device=device).view(-1, 1, 1)
    streamed = hasattr(data, "train_files")
    given = np.asarray(data.train_labels) if streamed else data.train_labels.numpy()
    # A dataset with its own validation set (Clothing1M's clean_val) keeps it; others split 80/20.
    own_val = streamed and data.val_files is not None
    if own_val:
        train_idx, val_idx = _subset(len(given), config)
    else:
        train_idx, val_idx = split_train_val(len(given), config.val_fraction, config.seed, config.train_size)
    # One draw per official training example, so an example's noisy label depends only on the seed
    # (or one label per example from a labels:FILE; relative files are also looked for in the data root).
    noisy_all, transition = noise.noisy_labels(config.noise, given, data.num_classes, config.seed,
                                               search=(resolve_data_dir(config.data_dir),))
    train_true, train_noisy = given[train_idx], noisy_all[train_idx]
    if own_val:
        val_true = np.asarray(data.val_labels)
        val_labels = val_true
    else:
        val_true = given[val_idx]
        val_labels = val_true if config.clean_validation else noisy_all[val_idx]
    freq = np.bincount(train_true, minlength=data.num_classes) / len(train_true)
    record = dict(
        train_index=train_idx, train_noisy=train_noisy, train_true=train_true,
        train_corrupted=train_noisy != train_true, train_rate=noise.realised_rate(train_true, train_noisy),
        val_index=val_idx, val_labels=val_labels, val_true=val_true,
        val_corrupted=val_labels != val_true, val_rate=noise.realised_rate(val_true, val_labels),
        transition=transition,
    )
    common = dict(num_classes=data.num_classes, scale=1.0 / (255.0 * std), shift=mean / std,
                  noisy_entropy_bits=noise.noisy_label_entropy_bits(transition, freq), record=record,
                  train_true=as_labels(train_true))
    if streamed:
        pick = lambda files, idx: [files[i] for i in idx]  # noqa: E731
        size = config.image_size or data.image_size
        resize = round(size * data.resize / data.image_size)  # keep the dataset's resize/crop ratio (256/224)
        val_files = data.val_files if own_val else pick(data.train_files, val_idx)
        test = None if data.test_files is None else Split(as_labels(data.test_labels), files=list(data.test_files))
        return RunData(train=Split(as_labels(train_noisy), files=pick(data.train_files, train_idx)),
                       val=Split(as_labels(val_labels), files=list(val_files)), test=test,
                       input_shape=(3, size, size),
                       file_options=dict(root=data.root, resize=resize, image_size=size, workers=config.workers),
                       **common)
    images = data.train_images
    return RunData(train=Split(as_labels(train_noisy), images[train_idx].to(device)),
                   val=Split(as_labels(val_labels), images[val_idx].to(device)),
                   test=Split(as_labels(data.test_labels), data.test_images.to(device)),
                   input_shape=tuple(images.shape[1:]), augmentation=data.augmentation, **common)


def _subset(n: int, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Training indices when the dataset brings its own validation set: all, or a seeded subset."""
    order = np.random.default_rng(config.seed).permutation(n)
    if config.train_size is not None:
        if config.train_size > n:
            raise LimitlabError(f"--train-size {config.train_size} is larger than the {n} training examples")
        order = order[:config.train_size]
    return np.sort(order).astype(np.int64), np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- objective
def load_classifier_weights(run: str | Path, config: Config, data: RunData, flag: str) -> dict:
    """The best-validation classifier weights (and BatchNorm buffers) of an earlier run, after
    checking that its dataset, architecture and number of classes match this run."""
    path = Path(run) / rundir.BEST
    if not path.exists():
        raise LimitlabError(f"{flag} {run}: no {rundir.BEST} there; point it at a finished CE run directory")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    source = Config.from_dict(ckpt["config"])
    ours, theirs = config.model or default_model(data.input_shape), source.model or default_model(data.input_shape)
    if (source.dataset, theirs) != (config.dataset, ours):
        raise LimitlabError(f"{flag} {run} was trained on {source.dataset} with {theirs}, but this run uses "
                            f"{config.dataset} with {ours}; they must match")
    head = [v for k, v in ckpt["classifier"].items() if k == "head.weight"]
    if head and head[0].shape[0] != data.num_classes:
        raise LimitlabError(f"{flag} {run} has {head[0].shape[0]} classes but this run has {data.num_classes}")
    return ckpt["classifier"]


def build_run_objective(config: Config, data: RunData, runtime: Runtime | None = None,
                        ) -> tuple[Objective, dict[str, np.ndarray]]:
    """The run's objective with its networks initialised (``--init-from``, ``--q-init-from``), and
    the extra arrays to save in the run directory (FW's transition matrix)."""
    runtime = runtime or Runtime(data.scale.device)
    model_name = config.model or default_model(data.input_shape)

    def make_model(role, head_bias=True):
        return build_model(model_name, data.input_shape, data.num_classes, role, config.dropout, head_bias,
                           pretrained=config.pretrained)

    init = config.init_from and load_classifier_weights(config.init_from, config, data, "--init-from")
    extras, context = {}, {}
    if config.method == "fw":
        if config.transition:
            t = noise.load_transition(config.transition, data.num_classes)
        else:  # Patrini et al.: estimate T from the CE model's softmax on the training set
            ce_model = make_model("classifier").to(data.scale.device, memory_format=torch.channels_last)
            ce_model.load_state_dict(init)
            t = losses.estimate_transition(predict(ce_model, data, data.train, config.eval_batch_size, runtime,
                                                   proba=True).cpu().numpy())
        extras["fw_transition"] = t
        context["transition"] = torch.as_tensor(t, dtype=torch.float32, device=data.scale.device)
    objective = build_objective(config.method, make_model, config, context)
    if init:
        objective.classifier.load_state_dict(init)
    if config.q_init_from:
        objective.q_network.load_state_dict(load_classifier_weights(config.q_init_from, config, data, "--q-init-from"))
    objective = objective.to(data.scale.device, memory_format=torch.channels_last)
    if runtime.world > 1 and data.scale.is_cuda:
        objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)  # global-batch BN statistics
    return objective, extras


def check_networks(objective: Objective, data: RunData, name: str) -> None:
    """The classifier (and q-network) map a batch of two training inputs to logits [2, K]."""
    x, _ = next(data.batches(data.train, torch.arange(min(2, len(data.train)), device=data.scale.device), 2))
    for net in (objective.classifier, getattr(objective, "q_network", None)):
        if net is not None:
            check_output_shape(net, x, data.num_classes, name)


# --------------------------------------------------------------------------- one epoch, evaluation
def train_one_epoch(objective: Objective, optimizer: torch.optim.Optimizer, data: RunData, batch_size: int,
                    generator: torch.Generator, runtime: Runtime | None = None,
                    step: Callable | None = None) -> dict[str, float]:
    """One pass over the training set in shuffled batches; returns the epoch means of the loss parts.

    Under DDP every process draws the same global order and takes its share ``rank::world`` of
    each global batch. A last batch of one example is skipped (BatchNorm cannot train on it).
    ``step`` is the (possibly DDP-wrapped or compiled) forward; it defaults to ``objective``.
    """
    runtime = runtime or Runtime(data.scale.device)
    step = step or objective
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
            loss, _ = step(x, data.train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Accumulate on the device; one sync per epoch, not per step.
        for k, v in {"loss": loss.detach(), **objective.parts}.items():
            sums[k] = sums.get(k, 0) + v.float() * len(idx)
        seen += len(idx)
    keys = sorted(sums)
    totals = runtime.sum(torch.stack([sums[k] for k in keys] + [seen]))
    return {k: (v / totals[-1]).item() for k, v in zip(keys, totals[:-1])}


@torch.no_grad()
def predict(model: torch.nn.Module, data: RunData, split: Split, batch_size: int, runtime: Runtime | None = None,
            proba: bool = False) -> torch.Tensor:
    """Predicted classes [N] (or softmax outputs [N, K] with ``proba``) of ``model`` in eval mode.
    Under DDP each process predicts the shard ``rank::world`` and the shards are gathered."""
    runtime = runtime or Runtime(data.scale.device)
    model.eval()
    order = torch.arange(runtime.rank, len(split), runtime.world, device=data.scale.device)
    outs = []
    for x, _ in data.batches(split, order, batch_size):
        with runtime.autocast():
            logits = model(x).float()
        outs.append(logits.softmax(1) if proba else logits.argmax(1))
    local = torch.cat(outs) if outs else torch.zeros((0, data.num_classes) if proba else 0, device=data.scale.device)
    if proba:
        return torch.stack([runtime.gather_strided(local[:, k].contiguous(), len(split))
                            for k in range(local.shape[1])], 1)
    return runtime.gather_strided(local, len(split))


def accuracy(model: torch.nn.Module, data: RunData, split: Split, batch_size: int, runtime: Runtime | None = None,
             ) -> float:
    return (predict(model, data, split, batch_size, runtime) == split.labels).float().mean().item()


def evaluate(objective: Objective, data: RunData, config: Config, epoch: int, runtime: Runtime) -> dict:
    """Per-epoch measurements of the classifier on the training and validation sets (SPEC §8).
    The pass over the training set runs every ``train_eval_every`` epochs (0: never)."""
    clf, bs = objective.classifier, config.eval_batch_size
    out = {k: None for k in ("train_noisy_accuracy", "train_clean_accuracy", "memorized_fraction",
                             "corrected_fraction", "info_lower_bound_bits")}
    if config.train_eval_every and epoch % config.train_eval_every == 0:
        out.update(metrics.label_fit(predict(clf, data, data.train, bs, runtime), data.train.labels, data.train_true))
        out["info_lower_bound_bits"] = metrics.fano_information_lower_bound(
            1.0 - out["train_noisy_accuracy"], data.num_classes, data.noisy_entropy_bits)
    out["val_accuracy"] = accuracy(clf, data, data.val, bs, runtime)
    return out


# --------------------------------------------------------------------------- the run
def _rng_state(generator: torch.Generator, device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, generator: torch.Generator, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


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
        config = dataclasses.replace(Config.load(out / rundir.CONFIG), device=config.device)
    config.validate()
    if config.method not in METHODS:
        raise LimitlabError(f"unknown method {config.method!r}; choose one of: {', '.join(METHODS)}")
    runtime = start_runtime(config)
    device = runtime.device
    data = prepare_data(config, device)
    torch.manual_seed(config.seed)
    objective, extras = build_run_objective(config, data, runtime)
    if is_factory_spec(config.model):  # a user's network: check its output on one batch before writing
        check_networks(objective, data, config.model)
    optimizer = torch.optim.Adam(objective.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    step = objective
    if runtime.world > 1:
        step = torch.nn.parallel.DistributedDataParallel(
            objective, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=config.warmup > 0)  # warm-up epochs leave the classifier without gradients
    if config.compile:
        step = torch.compile(step)

    main = runtime.is_main
    if main:
        rundir.prepare_run_dir(out, resume=resume, overwrite=overwrite)
    runtime.barrier()
    with rundir.RunLock(out) if main else contextlib.nullcontext():
        start_epoch, best, bad_epochs, history = 1, {"val_accuracy": -1.0, "epoch": 0, "test_accuracy": None}, 0, []
        if resume and (out / rundir.LAST).exists():
            ckpt = torch.load(out / rundir.LAST, map_location=device, weights_only=False)
            objective.load_state_dict(ckpt["objective"])
            optimizer.load_state_dict(ckpt["optimizer"])
            _set_rng_state(ckpt["rng"], generator, device)
            start_epoch, best, bad_epochs = ckpt["epoch"] + 1, ckpt["best"], ckpt["bad_epochs"]
            history = [r for r in rundir.read_metrics(out) if r["epoch"] <= ckpt["epoch"]]
        if main:
            rundir.write_json(out / rundir.CONFIG, config.to_dict())
            rundir.save_npz(out / rundir.NOISY_LABELS, **data.record)
            for name, array in extras.items():
                rundir.atomic_write_bytes(out / f"{name}.csv", _csv(array))
            rundir.write_metrics(out, history)  # drops rows of an epoch whose checkpoint was never written

        stopped_early = config.patience is not None and bad_epochs >= config.patience
        bar = _progress(range(start_epoch, config.epochs + 1), config, progress and main, initial=start_epoch - 1)
        for epoch in bar:
            if stopped_early:
                break
            t0 = time.perf_counter()
            objective.start_epoch(epoch)
            losses_ = train_one_epoch(objective, optimizer, data, config.batch_size, generator, runtime, step)
            train_seconds = time.perf_counter() - t0
            if not all(math.isfinite(v) for v in losses_.values()):
                raise LimitlabError(f"training diverged: the loss became {losses_['loss']} in epoch {epoch}; "
                                    f"try a lower --lr (now {config.lr}); the last good epoch is in {out / rundir.LAST}")
            row = {"epoch": epoch, **{f"train_{k}": v for k, v in losses_.items()},
                   **evaluate(objective, data, config, epoch, runtime)}
            improved = row["val_accuracy"] > best["val_accuracy"]
            bad_epochs = 0 if improved else bad_epochs + 1
            stopped_early = config.patience is not None and bad_epochs >= config.patience
            # The test pass may be thinned out (--test-every), but never at a new best epoch (the
            # reported number is the test accuracy there) nor at the last epoch.
            test_now = data.test is not None and (improved or epoch % config.test_every == 0
                                                  or epoch == config.epochs or stopped_early)
            row["test_accuracy"] = (accuracy(objective.classifier, data, data.test, config.eval_batch_size, runtime)
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
