"""CIFAR-10 and CIFAR-100 in the official "python version": pickled batches, read safely.

The files are looked for in ``<data root>/cifar10/`` (``cifar100/``), in this order:
the extracted folder (``cifar-10-batches-py/``, ``cifar-100-python/``), the same files directly in
the folder, or the archive (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``) read in place.
If none is there, the archive is downloaded (md5-checked) when allowed.

Each batch is a pickled dict with bytes keys: ``b"data"`` uint8 [N, 3072] (per row 1024 red, then
1024 green, then 1024 blue values, each a 32x32 image in row-major order) and ``b"labels"``
(CIFAR-10) or ``b"fine_labels"`` (CIFAR-100), a list of N ints. Pickles can run code when loaded,
so they are read with an unpickler that only builds NumPy arrays and plain containers.
"""

from __future__ import annotations

import builtins
import functools
import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from limitlab.data import download
from limitlab.data.core import ImageData
from limitlab.errors import LimitlabError


@dataclass(frozen=True)
class CifarSpec:
    """What one CIFAR release is called and where its pieces are."""

    title: str
    archive: str            # the published archive's file name
    subfolder: str          # the folder the archive extracts to
    train: tuple[str, ...]  # training batch file names
    test: str
    meta: str
    label_key: bytes        # key of the labels list in a batch
    names_key: bytes        # key of the class names list in the meta file
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def files(self) -> list[str]:
        return [*self.train, self.test, self.meta]


CIFAR = {
    "cifar10": CifarSpec("CIFAR-10", "cifar-10-python.tar.gz", "cifar-10-batches-py",
                         tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta",
                         b"labels", b"label_names", 10,
                         (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": CifarSpec("CIFAR-100", "cifar-100-python.tar.gz", "cifar-100-python",
                          ("train",), "test", "meta", b"fine_labels", b"fine_label_names", 100,
                          (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def load_cifar(key: str, folder: Path, allow_download: bool) -> ImageData:
    """CIFAR-10 (``key="cifar10"``) or CIFAR-100 (fine labels) from ``folder``.

    Returns ImageData with images uint8 [N, 3, 32, 32] (50000 train / 10000 test in the official
    release), labels int64 [N], the class names, mean/std and augmentation "crop-flip".
    """
    spec = CIFAR[key]
    sources = _read_sources(key, spec, folder, allow_download)  # file name -> (description, bytes)
    train = [_read_batch(spec, *sources[name]) for name in spec.train]
    test_images, test_labels = _read_batch(spec, *sources[spec.test])
    return ImageData(
        name=key, num_classes=spec.num_classes,
        train_images=torch.from_numpy(np.concatenate([images for images, _ in train])),
        train_labels=torch.from_numpy(np.concatenate([labels for _, labels in train])),
        test_images=torch.from_numpy(np.array(test_images)),  # a copy: writable
        test_labels=torch.from_numpy(test_labels),
        mean=spec.mean, std=spec.std, class_names=_read_class_names(spec, *sources[spec.meta]),
        augmentation="crop-flip",
    )


def _read_sources(key: str, spec: CifarSpec, folder: Path, allow_download: bool) -> dict[str, tuple[str, bytes]]:
    """The raw bytes of every file the release needs, from a folder or the archive (fetched if missing)."""
    for place in (folder / spec.subfolder, folder):
        if all((place / name).is_file() for name in spec.files):
            try:
                return {name: (str(place / name), (place / name).read_bytes()) for name in spec.files}
            except OSError as e:
                raise LimitlabError(f"cannot read {e.filename}: {e.strerror or e}") from None
    archive = folder / spec.archive
    if not archive.is_file():
        _fetch_archive(key, spec, folder, allow_download)
    return _read_archive(spec, archive)


def _fetch_archive(key: str, spec: CifarSpec, folder: Path, allow_download: bool) -> None:
    """Download the official archive into ``folder``, or raise the error saying what to put where."""
    url = download.BASE_URLS[key] + spec.archive
    reason = "downloading is switched off"
    if allow_download:
        try:
            download.download_file(url, folder / spec.archive, download.CHECKSUMS[key][spec.archive])
            return
        except download.DownloadUnavailable as e:
            reason = f"could not download it: {e}"
    raise LimitlabError(
        f"{spec.title} not found: put {spec.archive} (from {url}) or its extracted {spec.subfolder}/ folder "
        f"({', '.join(spec.files)}) in {folder}/ or pass --data-dir (or set LIMITLAB_DATA) to a folder "
        f"whose {key}/ holds them ({reason})")


def _read_archive(spec: CifarSpec, archive: Path) -> dict[str, tuple[str, bytes]]:
    """The needed members of the .tar.gz, by base name, read in one pass without extracting."""
    found: dict[str, tuple[str, bytes]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in spec.files and name not in found:
                    found[name] = (f"{member.name} in {archive}", tar.extractfile(member).read())
                    if len(found) == len(spec.files):
                        break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise LimitlabError(f"{archive} is truncated or corrupt ({e}); delete it and download it again") from None
    missing = [name for name in spec.files if name not in found]
    if missing:
        raise LimitlabError(f"{archive} lacks {', '.join(f'{spec.subfolder}/{m}' for m in missing)}; "
                            f"replace it with the official {spec.archive}")
    return found


class _Refused(pickle.UnpicklingError):
    """The pickle asked for a global outside the allow-list."""


@functools.cache
def _numpy_globals() -> dict[tuple[str, str], object]:
    try:  # NumPy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct
    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # written by NumPy 1.x (the official files)
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # written by NumPy 2
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}


_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "bytearray"}


def _latin1_bytes(text=None, encoding=None, *rest):
    """What Python 3 writes for ``bytes`` under pickle protocol 2: ``_codecs.encode(str, "latin1")``
    (and ``bytes()`` for b""). Only exactly that is accepted; it builds bytes and nothing else."""
    if text is None and encoding is None and not rest:
        return b""
    if rest or not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode (or bytes) with arguments other than (str, 'latin1')")
    return text.encode("latin-1")


class _CifarUnpickler(pickle.Unpickler):
    """Builds NumPy arrays and plain containers only; any other global (os.system, ...) is refused."""

    def find_class(self, module: str, name: str) -> object:
        allowed = _numpy_globals().get((module, name))
        if allowed is not None:
            return allowed
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if (module, name) in (("_codecs", "encode"), ("builtins", "bytes"), ("__builtin__", "bytes")):
            return _latin1_bytes
        raise _Refused(f"{module}.{name}")


def _unpickle(where: str, raw: bytes) -> dict:
    """The dict pickled in ``raw`` (Python 2 strings become bytes); ``where`` names it in errors."""
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise LimitlabError(f"{where} was refused: it asks to run {e}, which a CIFAR file never does "
                            f"(it may be malicious); replace it with the official file") from None
    except Exception as e:  # garbage makes pickle raise almost anything
        raise LimitlabError(f"{where} is not a valid CIFAR pickle ({type(e).__name__}: {e}); "
                            f"delete it and download it again") from None
    if not isinstance(obj, dict):
        raise LimitlabError(f"{where} holds a {type(obj).__name__}, not the dict of a CIFAR file; "
                            f"replace it with the official file")
    return obj


def _read_batch(spec: CifarSpec, where: str, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One batch: images uint8 [N, 3, 32, 32] (channel, row, column) and labels int64 [N]."""
    batch = _unpickle(where, raw)
    data, labels = batch.get(b"data"), batch.get(spec.label_key)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072):
        found = f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise LimitlabError(f"{where} has no uint8 b'data' array [N, 3072] (found {found}); "
                            f"replace it with the official {spec.title} file")
    labels = np.asarray(labels if isinstance(labels, (list, tuple, np.ndarray)) else [None])
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(data),):
        raise LimitlabError(f"{where} has no list of {len(data)} integer labels under "
                            f"{spec.label_key!r}; replace it with the official {spec.title} file")
    if labels.size and not 0 <= labels.min() <= labels.max() < spec.num_classes:
        bad = labels.min() if labels.min() < 0 else labels.max()
        raise LimitlabError(f"{where} has label {bad}, outside 0..{spec.num_classes - 1}; "
                            f"replace it with the official {spec.title} file")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_class_names(spec: CifarSpec, where: str, raw: bytes) -> list[str]:
    """The class names from the meta file, in label order."""
    names = _unpickle(where, raw).get(spec.names_key)
    if not (isinstance(names, list) and len(names) == spec.num_classes
            and all(isinstance(n, (bytes, str)) for n in names)):
        raise LimitlabError(f"{where} has no list of {spec.num_classes} class names under "
                            f"{spec.names_key!r}; replace it with the official {spec.title} file")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
