"""Datasets as uint8 tensors, and the train/validation split of SPEC §5.

``load_dataset(name)`` returns an :class:`ImageData` holding the whole official training and test
sets in memory (MNIST, CIFAR), or a :class:`FileData` listing image files that are decoded
while training (Clothing1M, a folder of images); ``split_train_val`` picks the validation part
and the training subset by index.
File formats and downloading stay inside this package.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from limitlab.data import download
from limitlab.data.files import FileData, ImageFiles, load_clothing1m, load_imagefolder
from limitlab.data.idx import read_idx, write_idx
from limitlab.errors import LimitlabError

__all__ = ["DATASETS", "FileData", "ImageData", "ImageFiles", "load_dataset", "read_idx", "resolve_data_dir",
           "split_train_val", "write_idx"]

DATASETS: dict[str, str] = {
    "digits": "8x8 handwritten digits, 1797 images embedded in the package (no download)",
    "mnist": "MNIST handwritten digits, 28x28, 60k train / 10k test (IDX files, downloaded if missing)",
    "fashion-mnist": "Fashion-MNIST clothing, 28x28, 60k train / 10k test (IDX files, downloaded if missing)",
    "cifar10": "CIFAR-10 objects, 10 classes, 32x32 colour, 50k train / 10k test (downloaded if missing)",
    "cifar100": "CIFAR-100 objects, 100 fine classes, 32x32 colour, 50k train / 10k test (downloaded if missing)",
    "clothing1m": "Clothing1M clothes, 14 classes, 1M web images with real noisy labels (request from the authors)",
    "imagefolder": "your own images: --data-dir with train/<class>/ folders or a labels.csv (path,label[,split])",
}

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DIGIT_CLASSES = [str(d) for d in range(10)]

# The IDX datasets: display name, class names, and the usual normalisation constants (0..1 scale).
_IDX_DATASETS = {
    "mnist": ("MNIST", DIGIT_CLASSES, (0.1307,), (0.3081,)),
    "fashion-mnist": ("Fashion-MNIST", FASHION_CLASSES, (0.2860,), (0.3530,)),
}
_IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

DIGITS_TEST_SIZE = 500  # the fixed test split of `digits`, drawn once with seed 0


@dataclass
class ImageData:
    """A labelled image dataset, whole, in memory.

    ``train_*`` is the official training set (validation is carved out of it by
    :func:`split_train_val`); ``test_*`` is the official test set.
    Images are uint8 [N, C, H, W]; labels are int64 [N] in 0..num_classes-1.
    ``mean``/``std`` are per-channel, on the 0..1 scale (pixel / 255), for normalisation.
    ``augmentation`` names the training-time augmentation (SPEC §5): None, or "crop-flip" (random
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


def load_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 download: bool = True) -> ImageData | FileData:
    """Load dataset ``name`` (a key of DATASETS).

    ``mnist``, ``fashion-mnist``, ``cifar10`` and ``cifar100`` are read from ``<data root>/<name>/``
    (see resolve_data_dir) as uint8 tensors (ImageData), downloading missing files if ``download`` is
    true; ``digits`` is embedded in the package. ``clothing1m`` (from ``<data root>/clothing1m/``) and
    ``imagefolder`` (``data_dir`` is the folder itself) are lists of image files (FileData).
    """
    key = name.strip().lower()
    if key == "digits":
        return _load_digits()
    if key in _IDX_DATASETS:
        return _load_idx_dataset(key, resolve_data_dir(data_dir) / key, download)
    if key in ("cifar10", "cifar100"):
        from limitlab.data.cifar import load_cifar  # imports ImageData from this package
        return load_cifar(key, resolve_data_dir(data_dir) / key, download)
    if key == "clothing1m":
        return load_clothing1m(resolve_data_dir(data_dir) / key)
    if key == "imagefolder":
        if data_dir is None:
            raise LimitlabError("the imagefolder dataset needs --data-dir set to the folder that holds your "
                                "train/<class>/ folders or labels.csv")
        return load_imagefolder(Path(data_dir).expanduser())
    raise LimitlabError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def split_train_val(num_train: int, val_fraction: float, seed: int,
                    train_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split the official training set into training and validation indices (SPEC §5).

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


def _load_digits() -> ImageData:
    """The UCI ML Optical Recognition of Handwritten Digits test set (E. Alpaydin & C. Kaynak,
    CC BY 4.0), as copied in scikit-learn: 1797 images of 8x8 pixels with values 0..16.

    It has no official test split, so a fixed one is drawn (seed 0, independent of the run seed):
    500 test images, the other 1297 form the official training set. Pixels are scaled to 0..255.
    """
    raw = gzip.decompress(resources.files(__package__).joinpath("digits.csv.gz").read_bytes())
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)  # [1797, 64 pixels + label]
    images = np.round(table[:, :64] * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = table[:, 64]
    order = np.random.default_rng(0).permutation(len(table))
    test, train = np.sort(order[:DIGITS_TEST_SIZE]), np.sort(order[DIGITS_TEST_SIZE:])
    pixels = images[train] / 255.0
    return ImageData(
        name="digits", num_classes=10,
        train_images=torch.from_numpy(images[train]), train_labels=torch.from_numpy(labels[train]),
        test_images=torch.from_numpy(images[test]), test_labels=torch.from_numpy(labels[test]),
        mean=(float(pixels.mean()),), std=(float(pixels.std()),), class_names=list(DIGIT_CLASSES),
    )


def _find_or_fetch(key: str, folder: Path, allow_download: bool) -> list[Path]:
    """Paths of the four IDX files in ``folder`` (plain preferred over .gz), downloading missing ones."""
    def existing(stem: str) -> Path | None:
        return next((p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()), None)

    missing = [f"{stem}.gz" for stem in _IDX_FILES if existing(stem) is None]
    if missing:
        base = download.BASE_URLS[key]
        reason = "downloading is switched off"
        if allow_download:
            try:
                for filename in missing:
                    download.download_file(base + filename, folder / filename,
                                           download.CHECKSUMS[key][filename])
                reason = ""
            except download.DownloadUnavailable as e:
                reason = f"could not download them: {e}"
        if reason:
            raise LimitlabError(
                f"{_IDX_DATASETS[key][0]} not found: put {', '.join(missing)} (from {base}) in {folder}/ "
                f"or pass --data-dir (or set LIMITLAB_DATA) to a folder whose {key}/ holds them ({reason})")
    return [existing(stem) for stem in _IDX_FILES]


def _load_idx_dataset(key: str, folder: Path, allow_download: bool) -> ImageData:
    """MNIST-format dataset from ``folder``: images uint8 [N, 1, H, W], labels int64 [N]."""
    title, class_names, mean, std = _IDX_DATASETS[key]
    paths = _find_or_fetch(key, folder, allow_download)
    arrays = [read_idx(p) for p in paths]
    for images_path, labels_path, images, labels in zip(paths[::2], paths[1::2], arrays[::2], arrays[1::2]):
        if images.ndim != 3 or images.dtype != np.uint8:
            raise LimitlabError(f"{images_path} holds {images.dtype} {list(images.shape)}, not uint8 images "
                                f"[N, H, W]; replace it with the official {title} file")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise LimitlabError(f"{labels_path} holds {labels.dtype} {list(labels.shape)}, not uint8 labels "
                                f"[N]; replace it with the official {title} file")
        if len(images) != len(labels):
            raise LimitlabError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
                                f"labels; replace them with the official {title} files")
        if labels.size and labels.max() >= len(class_names):
            raise LimitlabError(f"{labels_path} has label {labels.max()}, outside 0..{len(class_names) - 1}; "
                                f"replace it with the official {title} file")
    train_images, train_labels, test_images, test_labels = arrays
    return ImageData(
        name=key, num_classes=len(class_names),
        train_images=torch.from_numpy(train_images[:, None]),
        train_labels=torch.from_numpy(train_labels.astype(np.int64)),
        test_images=torch.from_numpy(test_images[:, None]),
        test_labels=torch.from_numpy(test_labels.astype(np.int64)),
        mean=mean, std=std, class_names=list(class_names),
    )
