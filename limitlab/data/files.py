"""Datasets of image files, too large for memory: listed at load time, decoded when read.

:class:`FileData` lists the files and their labels; :class:`ImageFiles` is the torch Dataset that
decodes them (with Pillow, an optional dependency) for a DataLoader with workers.
Two sources: Clothing1M (:func:`load_clothing1m`) and a user's folder (:func:`load_imagefolder`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from limitlab.errors import LimitlabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}

CLOTHING1M_CLASSES = ["T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
                      "Jacket", "Down Coat", "Suit", "Shawl", "Dress", "Vest", "Underwear"]
CLOTHING1M_FILES = ["noisy_train.txt", "clean_val.txt", "clean_test.txt"]
CLOTHING1M_KV_FILES = ["noisy_label_kv.txt", "clean_label_kv.txt", "noisy_train_key_list.txt",
                       "clean_val_key_list.txt", "clean_test_key_list.txt"]


@dataclass
class FileData:
    """A labelled dataset of image files (paths relative to ``root``), decoded by :class:`ImageFiles`.

    ``train_labels`` are the given, possibly noisy, labels: int64 [N] in 0..num_classes-1, one per
    entry of ``train_files``; likewise for val and test. ``val_files`` None: the training loop splits
    validation off the training set; ``test_files`` None: there is no test set.
    ``mean``/``std`` are per-channel on the 0..1 scale. Images are read with their shorter side
    resized to ``resize`` and cropped to ``image_size`` x ``image_size``.
    """

    name: str
    num_classes: int
    class_names: list[str]
    root: Path
    train_files: list[str]
    train_labels: np.ndarray
    val_files: list[str] | None
    val_labels: np.ndarray | None
    test_files: list[str] | None
    test_labels: np.ndarray | None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    image_size: int = 224
    resize: int = 256


def _pillow():
    """PIL.Image, imported on first use (Pillow is the optional ``images`` extra)."""
    try:
        from PIL import Image
    except ImportError:
        raise LimitlabError("reading image files needs Pillow: pip install 'limitlab[images]'") from None
    return Image


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded on demand: item i is (uint8 [3, image_size, image_size], int64 label, i).

    Each image is converted to RGB and its shorter side resized to ``resize``; for training
    (``train=True``) a random ``image_size`` square is cut and mirrored left-right with probability
    1/2 (drawn from torch's RNG, which DataLoader seeds per worker); otherwise the centre square.
    A DataLoader collates a batch to (uint8 [B, 3, S, S], int64 [B], int64 [B]).
    """

    def __init__(self, root: str | Path, files: list[str], labels: np.ndarray, train: bool,
                 resize: int = 256, image_size: int = 224):
        if len(files) != len(labels):
            raise LimitlabError(f"{len(files)} image files but {len(labels)} labels: give one label per file")
        if not 0 < image_size <= resize:
            raise LimitlabError(f"the crop size ({image_size}) must be between 1 and the resize ({resize})")
        _pillow()  # fail now, not in a worker, if Pillow is missing
        self.root, self.files, self.train = Path(root), list(files), train
        self.labels = np.asarray(labels, dtype=np.int64)
        self.resize, self.image_size = resize, image_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        pixels = self._decode(self.root / self.files[i])  # uint8 [h, w, 3], shorter side = resize
        h, w, s = pixels.shape[0], pixels.shape[1], self.image_size
        if self.train:
            top, left = (int(torch.randint(0, n - s + 1, ())) for n in (h, w))
        else:
            top, left = (h - s) // 2, (w - s) // 2
        crop = pixels[top:top + s, left:left + s]
        if self.train and torch.rand(()) < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop.transpose(2, 0, 1))
        return torch.from_numpy(crop), torch.tensor(self.labels[i], dtype=torch.int64), i

    def _decode(self, path: Path) -> np.ndarray:
        """The RGB image at ``path`` with its shorter side resized to ``resize``: uint8 [h, w, 3]."""
        Image = _pillow()
        try:
            with Image.open(path) as image:
                image.draft("RGB", (self.resize, self.resize))  # JPEG: decode at a reduced scale >= resize
                image = image.convert("RGB")
                w, h = image.size
                scale = self.resize / min(w, h)
                size = (max(self.resize, round(w * scale)), max(self.resize, round(h * scale)))
                return np.asarray(image.resize(size, Image.BILINEAR))
        except FileNotFoundError:
            raise LimitlabError(f"image {path} does not exist: put it there or remove it from the "
                                f"dataset's file list") from None
        except Exception as e:  # Pillow raises many types on broken files
            raise LimitlabError(f"cannot decode image {path} ({type(e).__name__}: {e}): replace it or "
                                f"remove it from the dataset's file list") from None


# ---------------------------------------------------------------------------------------- Clothing1M

def load_clothing1m(root: Path) -> FileData:
    """Clothing1M from ``root`` (``<data root>/clothing1m/``): train on the noisy labels of
    ``noisy_train.txt``, validate on ``clean_val.txt``, test on ``clean_test.txt`` (lines
    ``images/x/yy/NAME.jpg LABEL``); or, without those, the original release's key lists
    (``*_key_list.txt``) with labels from ``noisy_label_kv.txt`` (train) / ``clean_label_kv.txt``.
    Images are not checked here (a million files); reading a missing one raises the error.
    """
    root = Path(root)
    if all((root / f).is_file() for f in CLOTHING1M_FILES):
        splits = [_read_pairs(root / f) for f in CLOTHING1M_FILES]
    elif all((root / f).is_file() for f in CLOTHING1M_KV_FILES):
        noisy_kv, clean_kv = root / "noisy_label_kv.txt", root / "clean_label_kv.txt"
        noisy, clean = (dict(zip(files, labels.tolist())) for files, labels in map(_read_pairs, (noisy_kv, clean_kv)))
        splits = [_lookup(root / "noisy_train_key_list.txt", noisy, noisy_kv),
                  _lookup(root / "clean_val_key_list.txt", clean, clean_kv),
                  _lookup(root / "clean_test_key_list.txt", clean, clean_kv)]
    else:
        missing = [f for f in CLOTHING1M_FILES if not (root / f).is_file()]
        raise LimitlabError(
            f"Clothing1M not found: {root}/ lacks {', '.join(missing)} (or the original release's "
            f"{', '.join(CLOTHING1M_KV_FILES)}); it cannot be downloaded automatically, so request it from "
            f"its authors (https://github.com/Cysu/noisy_label) and put the annotation files and the images/ "
            f"folder in {root}/, or pass --data-dir (or set LIMITLAB_DATA) to a folder whose clothing1m/ holds them")
    (train_files, train_labels), (val_files, val_labels), (test_files, test_labels) = splits
    return FileData(name="clothing1m", num_classes=len(CLOTHING1M_CLASSES), class_names=list(CLOTHING1M_CLASSES),
                    root=root, train_files=train_files, train_labels=train_labels, val_files=val_files,
                    val_labels=val_labels, test_files=test_files, test_labels=test_labels)


def _lines(path: Path):
    """(line number, stripped line) for each non-blank line of a text file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise LimitlabError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    return ((n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip())


def _read_pairs(path: Path) -> tuple[list[str], np.ndarray]:
    """Lines ``PATH LABEL`` of a Clothing1M annotation file: (paths, int64 labels in 0..13)."""
    files, labels = [], []
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise LimitlabError(f"{path}, line {n}: expected 'images/PATH.jpg LABEL', got {line[:80]!r}")
        label = int(fields[1])
        if not 0 <= label < len(CLOTHING1M_CLASSES):
            raise LimitlabError(f"{path}, line {n}: label {label} is outside 0..{len(CLOTHING1M_CLASSES) - 1}")
        files.append(fields[0])
        labels.append(label)
    return files, np.array(labels, dtype=np.int64)


def _lookup(path: Path, kv: dict[str, int], kv_path: Path) -> tuple[list[str], np.ndarray]:
    """The paths listed in a key-list file (one per line) and their labels from ``kv``."""
    files = []
    for n, line in _lines(path):
        if len(line.split()) != 1:
            raise LimitlabError(f"{path}, line {n}: expected one image path, got {line[:80]!r}")
        if line not in kv:
            raise LimitlabError(f"{path}, line {n}: {line} has no label in {kv_path}")
        files.append(line)
    return files, np.array([kv[f] for f in files], dtype=np.int64)


# -------------------------------------------------------------------------------------- image folder

def load_imagefolder(root: Path) -> FileData:
    """A user's labelled images in ``root``, in one of two layouts.

    ``labels.csv`` with header ``path,label[,split]``: paths relative to ``root``; labels class names
    (classes = their sorted set) or, if all are integers >= 0, class indices (classes 0..max);
    split ``train`` (default), ``val`` or ``test``. Otherwise ``train/<class>/<image>`` with optional
    ``val/<class>/`` and ``test/<class>/``: classes are the sorted subfolder names of ``train/``.
    Labels are used as given (they may be noisy). Files are sorted, so the order is deterministic.
    """
    root = Path(root)
    if (root / "labels.csv").is_file():
        return _imagefolder_csv(root, root / "labels.csv")
    if not (root / "train").is_dir():
        raise LimitlabError(f"{root} holds neither a train/ folder with one subfolder of images per class "
                            f"nor a labels.csv (header path,label[,split]): create one of them")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise LimitlabError(f"{root / 'train'} has no class subfolders: put the images of each class in "
                            f"train/<class name>/")
    splits = {split: _scan(root, split, classes) for split in ("train", "val", "test")}
    if splits["train"][0] is None:
        raise LimitlabError(f"{root / 'train'} has no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return _file_data(root, classes, splits)


def _scan(root: Path, split: str, classes: list[str]) -> tuple[list[str] | None, np.ndarray | None]:
    """The images in ``root/split/<class>/`` (recursively, sorted) and their class indices;
    (None, None) if there are none."""
    if not (root / split).is_dir():
        return None, None
    index = {name: i for i, name in enumerate(classes)}
    files, labels = [], []
    for folder in sorted(p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in index:
            raise LimitlabError(f"{folder} is not one of the classes in {root / 'train'}/ ({', '.join(classes)}): "
                                f"rename or remove it")
        found = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        files += found
        labels += [index[folder.name]] * len(found)
    return (files, np.array(labels, dtype=np.int64)) if files else (None, None)


def _imagefolder_csv(root: Path, path: Path) -> FileData:
    """The ``labels.csv`` layout of :func:`load_imagefolder`."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LimitlabError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header[:2] != ["path", "label"] or header[2:] not in ([], ["split"]):
        raise LimitlabError(f"{path} must start with the header line path,label or path,label,split; "
                            f"found {','.join(header) or 'an empty file'}")
    entries = []  # (split, path, label text)
    for n, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header) or not row[0].strip() or not row[1].strip():
            raise LimitlabError(f"{path}, line {n}: expected {len(header)} fields ({','.join(header)}), "
                                f"got {','.join(row)[:80]!r}")
        split = row[2].strip().lower() if len(row) > 2 and row[2].strip() else "train"
        if split not in ("train", "val", "test"):
            raise LimitlabError(f"{path}, line {n}: split {row[2]!r} is not train, val or test")
        entries.append((split, row[0].strip(), row[1].strip()))
    texts = {label for _, _, label in entries}
    if all(t.isdigit() for t in texts):  # class indices
        classes = [str(i) for i in range(max(map(int, texts), default=-1) + 1)]
        index = {t: int(t) for t in texts}
    else:  # class names
        classes = sorted(texts)
        index = {name: i for i, name in enumerate(classes)}
    splits = {}
    for split in ("train", "val", "test"):
        chosen = sorted((p, index[label]) for s, p, label in entries if s == split)
        splits[split] = ([p for p, _ in chosen], np.array([y for _, y in chosen], dtype=np.int64)) \
            if chosen else (None, None)
    if splits["train"][0] is None:
        raise LimitlabError(f"{path} lists no training images: add rows with split train (or no split)")
    return _file_data(root, classes, splits)


def _file_data(root: Path, classes: list[str], splits: dict) -> FileData:
    """FileData named ``imagefolder`` from {split: (files, labels) or (None, None)}."""
    return FileData(name="imagefolder", num_classes=len(classes), class_names=classes, root=root,
                    train_files=splits["train"][0], train_labels=splits["train"][1],
                    val_files=splits["val"][0], val_labels=splits["val"][1],
                    test_files=splits["test"][0], test_labels=splits["test"][1])
