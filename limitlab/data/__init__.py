"""Datasets, registered by name (``--dataset``), as uint8 tensors or lists of image files.

``load_dataset(name)`` returns an :class:`ImageData` holding the whole official training and test
sets in memory (digits, MNIST, CIFAR), or a :class:`FileData` listing image files that are decoded
while training (Clothing1M, a folder of images); ``split_train_val`` picks the validation part and
the training subset by index (docs/method.md §5); :mod:`limitlab.data.run` turns a dataset into a
run's noisy, device-resident splits. File formats and downloading stay inside this package.

A new dataset is one registration::

    @register_dataset("my-set", description="…")
    def _my_set(data_dir, argument, download):
        return ImageData(...)
"""

from __future__ import annotations

import os
from importlib import import_module
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from limitlab.data import download
from limitlab.data.core import ImageData, resolve_data_dir, split_train_val
from limitlab.data.files import FileData, ImageFiles, load_clothing1m, load_imagefolder
from limitlab.data.idx import read_idx, write_idx
from limitlab.errors import LimitlabError
from limitlab.registry import Registry, decorator

__all__ = ["DATASETS", "DatasetSpec", "FileData", "ImageData", "ImageFiles", "download", "load_dataset", "read_idx",
           "register_dataset", "resolve_data_dir", "split_train_val", "write_idx"]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: ``build(data_dir, argument, download) -> ImageData | FileData``.

    ``data_dir`` is the ``--data-dir`` given (or None: the loader resolves the data root itself),
    ``argument`` the text after the colon of ``NAME:ARG`` for datasets that take one (``argument``
    names it, e.g. ``"FILE"``; None: no argument), ``download`` whether missing files may be fetched.
    ``options`` names the Config fields the dataset reads; they are passed to ``build`` as keywords.
    """

    name: str
    description: str
    build: Callable
    argument: str | None = None
    options: tuple[str, ...] = ()   # Config fields passed to build as keywords (e.g. label_column)


DATASETS: Registry[DatasetSpec] = Registry("dataset", "--dataset")
register_dataset = decorator(DATASETS, DatasetSpec)


@register_dataset("digits", description="8x8 handwritten digits, 1797 images embedded in the package (no download)")
def _digits(data_dir, argument, download):
    from limitlab.data.digits import load_digits
    return load_digits()


def _in_data_root(key: str, module: str, function: str) -> Callable:
    """A loader reading ``<data root>/<key>/`` with ``limitlab.data.<module>.<function>(key, folder,
    download)``, imported when the dataset is first loaded."""
    def build(data_dir, argument, download):
        load = getattr(import_module(f"limitlab.data.{module}"), function)
        return load(key, resolve_data_dir(data_dir) / key, download)
    return build


for _key, _module, _function, _text in (
        ("mnist", "idx", "load_idx_dataset", "MNIST handwritten digits, 28x28, 60k train / 10k test (IDX files, "
                                             "downloaded if missing)"),
        ("fashion-mnist", "idx", "load_idx_dataset", "Fashion-MNIST clothing, 28x28, 60k train / 10k test (IDX "
                                                     "files, downloaded if missing)"),
        ("cifar10", "cifar", "load_cifar", "CIFAR-10 objects, 10 classes, 32x32 colour, 50k train / 10k test "
                                           "(downloaded if missing)"),
        ("cifar100", "cifar", "load_cifar", "CIFAR-100 objects, 100 fine classes, 32x32 colour, 50k train / 10k "
                                            "test (downloaded if missing)")):
    register_dataset(_key, description=_text)(_in_data_root(_key, _module, _function))


@register_dataset("clothing1m", description="Clothing1M clothes, 14 classes, 1M web images with real noisy labels "
                                            "(request from the authors)")
def _clothing1m(data_dir, argument, download):
    return load_clothing1m(resolve_data_dir(data_dir) / "clothing1m")


@register_dataset("imagefolder", description="your own images: --data-dir with train/<class>/ folders or a "
                                             "labels.csv (path,label[,split])")
def _imagefolder(data_dir, argument, download):
    if data_dir is None:
        raise LimitlabError("the imagefolder dataset needs --data-dir set to the folder that holds your "
                            "train/<class>/ folders or labels.csv")
    return load_imagefolder(Path(data_dir).expanduser())


@register_dataset("table", description="your own table or embeddings: a .csv or .parquet file (label column "
                                       "--label-column, default label; other columns become features: docs/your-data.md) "
                                       "or an .npz with X, y [, X_test, y_test]",
                  argument="FILE", options=("label_column", "id_column"))
def _table(data_dir, argument, download, label_column=None, id_column=None):
    from limitlab.data.table import read_table

    path = Path(argument).expanduser()
    if not path.exists() and not path.is_absolute() and (resolve_data_dir(data_dir) / path).exists():
        path = resolve_data_dir(data_dir) / path
    return read_table(path, label_column, id_column)


def dataset_specs_text() -> str:
    """``digits, mnist, …, table:FILE``: the dataset forms, for help texts."""
    return ", ".join(s.name + (f":{s.argument}" if s.argument else "") for s in DATASETS.specs())


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
                 options: dict | None = None) -> ImageData | FileData:
    """Load the registered dataset ``name`` (``NAME`` or ``NAME:ARG``, see :data:`DATASETS`).

    ``mnist``, ``fashion-mnist``, ``cifar10`` and ``cifar100`` are read from ``<data root>/<name>/``
    (see :func:`resolve_data_dir`) as uint8 tensors (ImageData), downloading missing files if
    ``download`` is true; ``digits`` is embedded in the package. ``clothing1m`` (from
    ``<data root>/clothing1m/``) and ``imagefolder`` (``data_dir`` is the folder itself) are lists of
    image files (FileData). ``table:FILE`` is a feature table (:class:`limitlab.data.table.TableData`).
    ``options`` holds Config fields (None: not set); a dataset gets those it declares (``table``:
    ``label_column``), and one that is set but not declared is a one-sentence error.
    """
    key, sep, argument = str(name).strip().partition(":")
    key = key.strip().lower()
    if key not in DATASETS:
        raise LimitlabError(f"unknown dataset {name!r}: choose one of {dataset_specs_text()}")
    spec = DATASETS.get(key)
    if spec.argument is None and sep:
        raise LimitlabError(f"dataset {key} takes no argument, got {name!r}; write just {key!r}")
    if spec.argument is not None and not argument.strip():
        raise LimitlabError(f"dataset {key} needs an argument: write it as {key}:{spec.argument}")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    for option in options:
        if option not in spec.options:  # e.g. --label-column with an image dataset
            readers = ", ".join(s.name + (f":{s.argument}" if s.argument else "") for s in DATASETS.specs()
                                if option in s.options)
            raise LimitlabError(f"--{option.replace('_', '-')} is for the {readers or 'no'} dataset, not {name}; "
                                "drop it")
    return spec.build(data_dir, argument.strip() or None, download, **options)
