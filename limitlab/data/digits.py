"""The embedded 8×8 digits: the README's main job runs on them without a download."""

from __future__ import annotations

import gzip
import io
from importlib import resources

import numpy as np
import torch

from limitlab.data.core import ImageData

DIGIT_CLASSES = [str(d) for d in range(10)]
DIGITS_TEST_SIZE = 500  # the fixed test split of `digits`, drawn once with seed 0


def load_digits() -> ImageData:
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
