"""The in-memory dataset type, the data root, and the train/validation split of the paper protocol
(docs/method.md §5)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from limitlab.errors import LimitlabError


@dataclass
class ImageData:
    """A labelled image dataset, whole, in memory.

    ``train_*`` is the official training set (validation is carved out of it by
    :func:`split_train_val`); ``test_*`` is the official test set.
    Images are uint8 [N, C, H, W]; labels are int64 [N] in 0..num_classes-1.
    ``mean``/``std`` are per-channel, on the 0..1 scale (pixel / 255), for normalisation.
    ``augmentation`` names the training-time augmentation (docs/method.md §5): None, or "crop-flip" (random
    crop with padding 4 and horizontal flip, see :func:`limitlab.data.augment.random_crop_flip`).
    """

    name: str
    num_classes: int
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    augmentation: str | None = None


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """The data root: ``data_dir`` (--data-dir) if given, else $LIMITLAB_DATA, else ~/.cache/limitlab."""
    chosen = data_dir or os.environ.get("LIMITLAB_DATA") or Path.home() / ".cache" / "limitlab"
    return Path(chosen).expanduser()


def split_train_val(num_train: int, val_fraction: float, seed: int,
                    train_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split the official training set into training and validation indices (docs/method.md §5).

    A permutation of ``range(num_train)`` seeded by ``seed``: its first ``round(val_fraction *
    num_train)`` entries are validation, the rest training. With ``train_size``, only the first
    ``train_size`` of the training part are kept (so smaller subsets nest inside larger ones, and
    the validation set does not depend on ``train_size``).
    Returns (train_idx, val_idx), disjoint int64 arrays of indices into the official training set.
    """
    if not 0 <= val_fraction < 1:
        raise LimitlabError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    num_val = int(round(val_fraction * num_train))
    available = num_train - num_val
    if available < 1:
        raise LimitlabError(f"a training set of {num_train} images leaves none for training after "
                            f"a validation fraction of {val_fraction}: use a smaller fraction")
    if train_size is not None and not 1 <= train_size <= available:
        raise LimitlabError(f"the training size must be between 1 and {available} (the training part "
                            f"left after validation), got {train_size}")
    order = np.random.default_rng(seed).permutation(num_train).astype(np.int64)
    val_idx, train_idx = order[:num_val], order[num_val:]
    if train_size is not None:
        train_idx = train_idx[:train_size]
    return train_idx, val_idx
