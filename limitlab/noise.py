"""Label-noise models (docs/method.md §4), registered by name: the spec forms (``uniform:0.8``), seeded
corruption and realised rates. The transition matrices themselves are built and checked in
:mod:`limitlab.transitions` (re-exported here).

A noise model is a K x K row-stochastic transition matrix ``T[true, observed]``: a training label
``y`` is replaced by a draw from row ``T[y]``. Everything here is NumPy arrays in, arrays out.

Two conventions for "uniform" noise exist and must never be mixed silently:

- ``uniform:p`` (the paper's): the label moves to one of the other K-1 classes with total
  probability p, so p is the real corruption rate.
- ``symmetric:p`` (DivideMix's): with probability p the label is redrawn uniformly over all K
  classes, so the real corruption rate is p(K-1)/K.

Every user mistake raises :class:`limitlab.errors.LimitlabError` with a one-sentence message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import LimitlabError
from .noise_files import load_noisy_labels
from .registry import Registry
from .transitions import (check_num_classes, check_transition, load_transition, pair_cifar10_transition,
                          pairflip_transition, symmetric_transition, uniform_transition)

__all__ = ["NOISE_MODELS", "NoiseSpec", "noise_specs_text", "split_spec", "noise_rate", "parse_noise", "noisy_labels",
           "corrupt_labels", "empirical_transition", "realised_rate", "check_transition", "load_transition",
           "uniform_transition", "symmetric_transition", "pairflip_transition", "pair_cifar10_transition"]


@dataclass(frozen=True)
class NoiseSpec:
    """A noise model: ``build(num_classes, argument) -> T`` (K × K, row-stochastic). ``argument`` says
    what follows the colon of the spec: ``"p"`` (a rate in [0, 1], passed as a float), ``"FILE"``
    (passed as text) or None (no argument). A model with ``read_labels`` reads the noisy labels
    themselves (see :func:`noisy_labels`)."""

    name: str
    description: str
    build: Callable[[int, object], np.ndarray]
    argument: str | None = "p"
    # Models whose noisy labels are given, not drawn from a T (labels:FILE[:KEY]):
    # read_labels(argument, true_labels, num_classes, search_folders) -> noisy labels [N].
    read_labels: Callable | None = None


def _labels_have_no_matrix(k, arg):
    raise LimitlabError(f"noise spec {f'labels:{arg}'!r} reads the noisy labels from a file and has no transition matrix "
                        "of its own; use noise.noisy_labels(spec, true_labels, K, seed)")


NOISE_MODELS: Registry[NoiseSpec] = Registry("noise model", "--noise")
for _spec in (
    NoiseSpec("none", "clean labels (identity transition matrix)", lambda k, _: np.eye(k), argument=None),
    NoiseSpec("uniform", "paper convention: the label moves to one of the other K-1 classes with total "
                         "probability p", uniform_transition),
    NoiseSpec("symmetric", "DivideMix convention: the label is redrawn uniformly over all K classes with "
                           "probability p (real rate p(K-1)/K)", symmetric_transition),
    NoiseSpec("pairflip", "class i becomes class (i+1) mod K with probability p", pairflip_transition),
    NoiseSpec("pair-cifar10", "CIFAR-10 pairs truck->automobile, bird->airplane, deer->horse, cat->dog with "
                              "probability p", lambda k, p: pair_cifar10_transition(p, k)),
    NoiseSpec("matrix", "a K x K row-stochastic matrix from a .npy, .csv or whitespace-separated .txt file",
              lambda k, path: load_transition(path, k), argument="FILE"),
    NoiseSpec("labels", "noisy labels for the official training set, in its order, from a .npy, a .csv/.txt (one "
                        "per line) or a .pt file with KEY (e.g. CIFAR-10N's aggre_label); the dataset's labels stay "
                        "the true ones; -1 leaves an example out", _labels_have_no_matrix, argument="FILE[:KEY]",
              read_labels=load_noisy_labels),
):
    NOISE_MODELS.add(_spec)


def noise_specs_text() -> str:
    """``none, uniform:p, …, matrix:FILE``: the spec forms, for help texts."""
    return ", ".join(s.name + (f":{s.argument}" if s.argument else "") for s in NOISE_MODELS.specs())


def split_spec(spec: str) -> tuple[str, str | None]:
    """``'uniform:0.8'`` → ``('uniform', '0.8')``; ``'none'`` → ``('none', None)``. The one place a
    noise spec is taken apart (names are case-insensitive, spaces around parts ignored)."""
    name, sep, arg = str(spec).strip().partition(":")
    return name.strip().lower(), (arg.strip() if sep else None)


def noise_rate(spec: str) -> float | None:
    """The rate p of a spec such as ``'uniform:0.8'`` (0 for ``none``), or None when the spec has no
    rate (``matrix:FILE``) or it is not a number."""
    name, arg = split_spec(spec)
    if name == "none":
        return 0.0
    spec_ = NOISE_MODELS.get(name) if name in NOISE_MODELS else None
    if spec_ is None or spec_.argument != "p":
        return None
    try:
        return float(arg)
    except (TypeError, ValueError):
        return None


def parse_noise(spec: str, num_classes: int) -> np.ndarray:
    """Build the transition matrix for a noise spec such as ``'uniform:0.8'``.

    Specs: ``NAME`` or ``NAME:ARG`` with NAME in :data:`NOISE_MODELS`: ``none``, ``uniform:p``,
    ``symmetric:p``, ``pairflip:p``, ``pair-cifar10:p``, ``matrix:FILE``; p must be in [0, 1].

    Parameters
    ----------
    spec : str
        The noise spec, ``NAME`` or ``NAME:ARG``.
    num_classes : int
        K, the number of classes of the data set.

    Returns
    -------
    transition : np.ndarray, shape (K, K), float64
        Row-stochastic matrix ``T[true, observed]`` (the identity for ``none``).
    """
    k = check_num_classes(num_classes)
    name, arg = split_spec(spec)
    if name not in NOISE_MODELS:
        raise LimitlabError(f"unknown noise model {name!r} in {spec!r}; known models: {noise_specs_text()}")
    entry = NOISE_MODELS.get(name)
    if entry.argument is None:
        if arg is not None:
            raise LimitlabError(f"noise model '{name}' takes no argument, got {spec!r}; write just '{name}'")
        return entry.build(k, None)
    if not arg:
        example = f"{name}:T.npy" if entry.argument == "FILE" else f"{name}:0.4"
        what = "a file name" if entry.argument == "FILE" else "a rate p in [0, 1]"
        raise LimitlabError(f"noise spec {spec!r} is missing {what}; write it like '{example}'")
    if entry.argument != "p":
        return entry.build(k, arg)
    try:
        p = float(arg)
    except ValueError:
        raise LimitlabError(f"noise rate {arg!r} in {spec!r} is not a number; give a value in [0, 1], e.g. '{name}:0.4'") from None
    if not 0.0 <= p <= 1.0:
        raise LimitlabError(f"noise rate {arg} in {spec!r} is outside [0, 1]")
    return entry.build(k, p)


def noisy_labels(spec: str, true_labels: np.ndarray, num_classes: int, seed: int, search: tuple = (),
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The noisy labels of a noise spec and the transition matrix they come from.

    Synthetic specs: T from :func:`parse_noise`, labels drawn by :func:`corrupt_labels` with
    ``seed``. Models that read their labels (``labels:FILE[:KEY]``, see :func:`limitlab.noise_files.load_noisy_labels`;
    ``search`` folders are tried for a relative FILE): those labels, and T their
    :func:`empirical_transition` (so that H(ỹ|x) and the information bound still work).

    Returns
    -------
    noisy : np.ndarray of int64, shape (N,)
    transition : np.ndarray, shape (K, K)
    """
    name, arg = split_spec(spec)
    entry = NOISE_MODELS.get(name) if name in NOISE_MODELS else None
    if entry is not None and entry.read_labels is not None:
        if not arg:
            raise LimitlabError(f"noise spec '{spec}' is missing a file; write it like '{name}:noisy.npy' or "
                                f"'{name}:CIFAR-10_human.pt:aggre_label'")
        noisy = entry.read_labels(arg, np.asarray(true_labels), check_num_classes(num_classes), search)
        kept = noisy >= 0  # -1: an example left out of the run (limitlab.data.run drops it)
        return noisy, empirical_transition(np.asarray(true_labels)[kept], noisy[kept], num_classes)
    transition = parse_noise(spec, num_classes)
    return corrupt_labels(true_labels, transition, seed), transition


# --------------------------------------------------------------------------------------------
# Corruption
# --------------------------------------------------------------------------------------------

def corrupt_labels(labels: np.ndarray, transition: np.ndarray, seed: int) -> np.ndarray:
    """Redraw each label ``y`` from row ``T[y]`` of the transition matrix.

    One uniform draw ``u`` per example from ``np.random.default_rng(seed)``; the new label is the
    first class whose cumulative probability in row ``T[y]`` exceeds ``u``. Vectorised over
    examples (a loop over the K classes only). Deterministic given ``seed``.

    Parameters
    ----------
    labels : np.ndarray of int, any shape
        True labels, integers in [0, K).
    transition : np.ndarray, shape (K, K)
        Row-stochastic matrix ``T[true, observed]``.
    seed : int
        Seed of the random generator.

    Returns
    -------
    noisy_labels : np.ndarray of int64, same shape as ``labels``
        The corrupted labels. ``noisy_labels != labels`` is the corruption mask.
    """
    t = check_transition(transition)
    k = t.shape[0]
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise LimitlabError(f"labels must be integers, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise LimitlabError(f"labels must lie in [0, {k}) for a {k}x{k} transition matrix, but they range over [{y.min()}, {y.max()}]")
    flat = y.reshape(-1).astype(np.int64)

    # Round-off guard: a row may sum to 1 +- 1e-6, so force the cumulative sum to exactly 1 from
    # the row's last positive entry onwards; then u < 1 can only land on a class with T > 0.
    cum = np.cumsum(t, axis=1)
    last_positive = k - 1 - np.argmax(t[:, ::-1] > 0, axis=1)
    cum[np.arange(k)[None, :] >= last_positive[:, None]] = 1.0

    u = np.random.default_rng(seed).random(flat.size)
    out = np.empty_like(flat)
    for c in range(k):
        idx = np.flatnonzero(flat == c)
        out[idx] = np.searchsorted(cum[c], u[idx], side="right")
    return out.reshape(y.shape)


def empirical_transition(true_labels: np.ndarray, noisy_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The transition matrix that a set of (true, noisy) label pairs realises.

    ``T[i, j]`` = the fraction of examples of true class i whose noisy label is j. A class with no
    examples gets the identity row. Used for imported noisy labels (``labels:FILE``), whose noise
    process is unknown, so that H(noisy label | x) can still be computed for the information bound.

    Parameters
    ----------
    true_labels, noisy_labels : np.ndarray of int, shape (N,)
        Labels in [0, K).
    num_classes : int
        K.

    Returns
    -------
    transition : np.ndarray, shape (K, K), float64
        Row-stochastic.
    """
    k = check_num_classes(num_classes)
    a, b = np.asarray(true_labels, dtype=np.int64), np.asarray(noisy_labels, dtype=np.int64)
    counts = np.bincount(a * k + b, minlength=k * k).reshape(k, k).astype(np.float64)
    rows = counts.sum(1, keepdims=True)
    return np.where(rows > 0, counts / np.maximum(rows, 1), np.eye(k))


def realised_rate(true_labels: np.ndarray, noisy_labels: np.ndarray) -> float:
    """Fraction of examples whose noisy label differs from the true label.

    Parameters
    ----------
    true_labels, noisy_labels : np.ndarray, same shape (N,)
        Labels before and after corruption.

    Returns
    -------
    rate : float
        ``mean(true_labels != noisy_labels)`` in [0, 1].
    """
    a, b = np.asarray(true_labels), np.asarray(noisy_labels)
    if a.shape != b.shape:
        raise LimitlabError(f"true and noisy labels must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise LimitlabError("cannot compute a noise rate from zero labels; check that the data split is not empty")
    return float(np.mean(a != b))
