"""Measurements of SPEC §8: accuracy against noisy and true labels, memorization of the corrupted
examples, and Fano's lower bound on the label-noise information stored in the weights."""

from __future__ import annotations

import math

import torch


def label_fit(preds: torch.Tensor, noisy: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """How predictions relate to the noisy and the true labels of a training set.

    Args:
        preds, noisy, true: [N] int64 predicted, noisy (given) and true labels.

    Returns:
        ``train_noisy_accuracy`` (agreement with the given labels), ``train_clean_accuracy``
        (with the true labels), and on the corrupted examples (noisy != true) the fractions
        predicted as their noisy label (``memorized_fraction``) and as their true label
        (``corrected_fraction``); both NaN when nothing is corrupted.
    """
    corrupted = noisy != true
    n_corrupted = int(corrupted.sum())
    out = {
        "train_noisy_accuracy": (preds == noisy).float().mean().item(),
        "train_clean_accuracy": (preds == true).float().mean().item(),
        "memorized_fraction": float("nan"),
        "corrected_fraction": float("nan"),
    }
    if n_corrupted:
        out["memorized_fraction"] = (preds[corrupted] == noisy[corrupted]).float().mean().item()
        out["corrected_fraction"] = (preds[corrupted] == true[corrupted]).float().mean().item()
    return out


def binary_entropy_bits(r: float) -> float:
    """H_b(r) in bits, with 0·log 0 = 0."""
    return -sum(p * math.log2(p) for p in (r, 1.0 - r) if p > 0)


def fano_information_lower_bound(train_error: float, num_classes: int, noisy_entropy_bits: float) -> float:
    """Lower bound on I(w; ỹ | x) / n in bits per example (SPEC §8), from Fano's inequality.

    ``train_error`` r is the fraction of training examples whose prediction differs from the noisy
    label; ``noisy_entropy_bits`` is H(ỹ|x) (see :func:`limitlab.noise.noisy_label_entropy_bits`).
    Returns max(0, H(ỹ|x) − H_b(r) − r·log2(K−1)).
    """
    bound = noisy_entropy_bits - binary_entropy_bits(train_error) - train_error * math.log2(max(num_classes - 1, 1))
    return max(0.0, bound)
