"""The IDX format that MNIST and Fashion-MNIST are published in (reader and writer), and those
datasets loaded from their four IDX files.

Layout: two zero bytes, a dtype code byte, a byte with the number of dimensions ``ndim``,
``ndim`` big-endian uint32 sizes, then the array's elements, big-endian, in C order.
A path ending in ``.gz`` is gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from limitlab.data import download
from limitlab.data.core import ImageData
from limitlab.data.digits import DIGIT_CLASSES
from limitlab.errors import LimitlabError

# IDX dtype code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain, or gzip if the name ends in ``.gz``).

    Returns a writable native-endian array with the shape and dtype stored in the header
    (MNIST images: uint8 [N, 28, 28]; labels: uint8 [N]).
    Raises LimitlabError naming the file if it cannot be read or is not a valid IDX file.
    """
    path = Path(path)

    def invalid(why: str) -> LimitlabError:
        return LimitlabError(f"{path} is not a valid IDX file ({why}); delete it and download it again")

    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise invalid(f"unreadable gzip data: {e}") from None
    except OSError as e:
        raise LimitlabError(f"cannot read {path}: {e.strerror or e}") from None

    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise invalid(f"bad magic number {raw[:4].hex() or 'empty file'}, expected 0000xxyy")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise invalid(f"unknown dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise invalid(f"truncated header: {ndim} dimensions need {header} bytes, found {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        what = "truncated" if found < expected else "trailing garbage"
        raise invalid(f"{what}: expected {expected} data bytes, found {found}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a copy: writable and native-endian


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (any shape; dtype uint8, int8, int16, int32, float32 or float64) as IDX.

    The file is gzip-compressed if ``path`` ends in ``.gz``.
    """
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise LimitlabError(f"IDX cannot store dtype {array.dtype}: convert the array to one of "
                            f"{', '.join(str(d) for d in codes)} first")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, codes[dtype], array.ndim, *array.shape)
    payload = header + array.astype(dtype.newbyteorder(">")).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


# ------------------------------------------------------------------ MNIST-format datasets
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# The IDX datasets: display name, class names, and the usual normalisation constants (0..1 scale).
_IDX_DATASETS = {
    "mnist": ("MNIST", DIGIT_CLASSES, (0.1307,), (0.3081,)),
    "fashion-mnist": ("Fashion-MNIST", FASHION_CLASSES, (0.2860,), (0.3530,)),
}
_IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

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


def load_idx_dataset(key: str, folder: Path, allow_download: bool) -> ImageData:
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
