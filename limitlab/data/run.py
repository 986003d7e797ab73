"""A run's data (docs/method.md §5): the dataset loaded, split 80/20 (plus an optional training
subset), its labels corrupted by the noise model, and the splits moved to the training device.
Training sees only the noisy labels; the true ones are kept for the measurements."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from limitlab import metrics, noise
from limitlab.data import load_dataset, resolve_data_dir, split_train_val
from limitlab.data.augment import random_crop_flip
from limitlab.errors import LimitlabError

if TYPE_CHECKING:
    from limitlab.config import Config


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
    """A run's data: training labels are the noisy ones, the only labels training sees."""

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
    table: dict | None = None         # .csv/.parquet runs: source and encoding (limitlab.data.table_run)

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
            # a pass over the whole split in order (evaluation) takes slices: views, not gathered copies
            in_order = not train and len(order) == len(split) and bool(
                (order == torch.arange(len(order), device=order.device)).all())
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                images = split.images[start:start + batch_size] if in_order else split.images[idx]
                if train and self.augmentation == "crop-flip":
                    images = random_crop_flip(images, padding=4, generator=generator)
                yield self.to_input(images), idx
            return
        from torch.utils.data import DataLoader, Subset

        from limitlab.data.files import ImageFiles

        opts = self.file_options
        dataset = ImageFiles(opts["root"], split.files, split.labels.cpu().numpy(), train=train,
                             resize=opts["resize"], image_size=opts["image_size"])
        loader = DataLoader(Subset(dataset, order.cpu().tolist()), batch_size=batch_size, shuffle=False,
                            num_workers=opts["workers"], pin_memory=self.scale.is_cuda,
                            persistent_workers=False)
        device = self.scale.device
        for images, _, idx in loader:
            yield self.to_input(images.to(device, non_blocking=True)), idx.to(device, non_blocking=True)


def prepare_data(config: Config, device: torch.device, run_dir: str | Path | None = None) -> RunData:
    """Load, split (seeded 80/20 + optional subset), corrupt, and move the data to ``device``.

    ``run_dir``: the run being resumed or scored; a table run's saved record (table.json) then
    locates its table and checks that the refitted encoding is the same (limitlab.data.table_run).
    """
    from limitlab.data import table_run

    saved = table_run.read_record(run_dir) if config.dataset.lower().startswith("table:") else None
    dataset = config.dataset
    if saved is not None:
        argument = config.dataset.partition(":")[2].strip()
        root = resolve_data_dir(config.data_dir)
        candidates = [Path(argument).expanduser(), root / argument, root / Path(argument).name]
        dataset = "table:" + table_run.locate_table(argument, candidates, saved)
    data = load_dataset(dataset, config.data_dir,
                        options={"label_column": config.label_column, "id_column": config.id_column})
    as_labels = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64, device=device)  # noqa: E731
    streamed = hasattr(data, "train_files")
    given = np.asarray(data.train_labels) if streamed else data.train_labels.numpy()
    # A dataset with its own validation set (Clothing1M's clean_val) keeps it; others split 80/20.
    own_val = streamed and data.val_files is not None
    if own_val:
        train_idx, val_idx = _subset(len(given), config)
    else:
        train_idx, val_idx = split_train_val(len(given), config.val_fraction, config.seed, config.train_size)
        if data.mean is None and (len(train_idx) < 2 or len(val_idx) < 1):  # a table too small for the splits
            raise LimitlabError(f"{config.dataset} leaves {len(train_idx)} training and {len(val_idx)} validation "
                                f"rows after its test split (--val-fraction {config.val_fraction}): too few to "
                                "train and validate; give more rows")
    # One draw per official training example, so an example's noisy label depends only on the seed
    # (or one label per example from a labels:FILE; relative files are also looked for in the data root).
    noisy_all, transition = noise.noisy_labels(config.noise, given, data.num_classes, config.seed,
                                               search=(resolve_data_dir(config.data_dir),))
    if (noisy_all < 0).any():  # labels:FILE with -1: those examples are left out of training and validation
        train_idx, val_idx = train_idx[noisy_all[train_idx] >= 0], val_idx[noisy_all[val_idx] >= 0]
        if len(train_idx) == 0:
            raise LimitlabError(f"the labels of --noise {config.noise} leave out (-1) every training example")
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
    table = None
    if data.mean is None:  # feature tables: encoded and standardised with the training split only
        if data.frame is not None:
            table = table_run.encode_run_table(data, train_idx, saved)
        scale, shift = standardisation(data.train_images[train_idx], device)
        record.update(train_file_row=np.asarray(data.train_rows)[train_idx],
                      val_file_row=np.asarray(data.train_rows)[val_idx],
                      feature_names=np.asarray(data.feature_names, dtype=str),
                      class_names=np.asarray(data.class_names, dtype=str))
        if getattr(data, "test_rows", None) is not None:
            record.update(test_file_row=np.asarray(data.test_rows))
        if data.row_keys is not None:
            record.update(train_row_key=np.asarray(data.row_keys[train_idx], dtype=str),
                          val_row_key=np.asarray(data.row_keys[val_idx], dtype=str))
            if data.test_row_keys is not None:
                record.update(test_row_key=np.asarray(data.test_row_keys, dtype=str))
    else:  # images: uint8 pixels, per-channel mean and std on the 0..1 scale
        mean = torch.tensor(data.mean, dtype=torch.float32, device=device).view(-1, 1, 1)
        std = torch.tensor(data.std, dtype=torch.float32, device=device).view(-1, 1, 1)
        scale, shift = 1.0 / (255.0 * std), mean / std
    common = dict(num_classes=data.num_classes, scale=scale, shift=shift,
                  noisy_entropy_bits=metrics.noisy_label_entropy_bits(transition, freq), record=record,
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
                   input_shape=tuple(images.shape[1:]), augmentation=data.augmentation, table=table, **common)


def standardisation(x: torch.Tensor, device: torch.device, per_channel: bool = False, chunk: int = 1 << 16,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) that standardise each feature of ``x`` [N, ...] (x * scale - shift has mean 0
    and std 1 over these rows; constant features are only centred). ``per_channel``: one pair per
    channel of images [N, C, H, W] (the estimator's image arrays), shaped [C, 1, 1]. Sums in float64
    over chunks of rows: no float64 copy of the whole table."""
    dims = (0, *range(2, x.ndim)) if per_channel else (0,)
    n = x.numel() // max(1, x.shape[1] if per_channel else x[0].numel())
    view = (-1, *(1,) * (x.ndim - 2)) if per_channel else tuple(x.shape[1:])
    mean = sum(x[i:i + chunk].double().sum(dims) for i in range(0, len(x), chunk)) / n
    var = sum((x[i:i + chunk].double() - mean.view(view)).pow(2).sum(dims) for i in range(0, len(x), chunk)) / n
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    scale, shift = 1.0 / std, mean / std
    if per_channel:
        scale, shift = scale.view(-1, *(1,) * (x.ndim - 2)), shift.view(-1, *(1,) * (x.ndim - 2))
    return scale.float().to(device), shift.float().to(device)


def _subset(n: int, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Training indices when the dataset brings its own validation set: all, or a seeded subset."""
    order = np.random.default_rng(config.seed).permutation(n)
    if config.train_size is not None:
        if config.train_size > n:
            raise LimitlabError(f"--train-size {config.train_size} is larger than the {n} training examples")
        order = order[:config.train_size]
    return np.sort(order).astype(np.int64), np.zeros(0, dtype=np.int64)
