"""Label-noise transition matrices ``T[true, observed]`` (K × K, row-stochastic; docs/method.md §4):
the paper's ``uniform`` and DivideMix's ``symmetric`` conventions (see :mod:`limitlab.noise`), pair
flips, CIFAR-10's pairs, and a user's matrix from a file, each checked with one-sentence errors."""

from __future__ import annotations

import numpy as np

from .errors import LimitlabError
from .noise_files import read_matrix_file

# CIFAR-10 class indices: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 7 horse, 9 truck.
_CIFAR10_PAIRS = {9: 1, 2: 0, 4: 7, 3: 5}

_ROW_SUM_TOL = 1e-6


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------

def check_num_classes(num_classes: int) -> int:
    """``num_classes`` if it is an integer >= 2, else LimitlabError."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise LimitlabError(f"number of classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def _check_rate(p: float, name: str = "noise rate") -> float:
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise LimitlabError(f"{name} {p!r} is not a number; give a value in [0, 1]") from None
    if not 0.0 <= p <= 1.0:  # also rejects nan
        raise LimitlabError(f"{name} {p} is outside [0, 1]")
    return p


def check_transition(transition, num_classes: int | None = None, where: str = "") -> np.ndarray:
    """Return ``transition`` as a float64 K x K array, or raise if it is not row-stochastic."""
    src = f" in {where}" if where else ""
    t = np.asarray(transition)
    if t.dtype.kind not in "biuf":
        raise LimitlabError(f"transition matrix{src} must be numeric, got dtype {t.dtype}")
    t = t.astype(np.float64)
    k = num_classes if num_classes is not None else (t.shape[0] if t.ndim == 2 else None)
    if t.ndim != 2 or t.shape != (k, k) or k < 2:
        want = f"{k}x{k} (one row and column per class)" if k else "square K x K with K >= 2"
        raise LimitlabError(f"transition matrix{src} has shape {t.shape} but must be {want}")
    if not np.all(np.isfinite(t)):
        raise LimitlabError(f"transition matrix{src} contains NaN or infinite entries")
    if np.any(t < 0):
        i, j = np.argwhere(t < 0)[0]
        raise LimitlabError(f"transition matrix{src} has a negative entry T[{i},{j}] = {t[i, j]:g}; probabilities must be >= 0")
    sums = t.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOL)
    if bad.size:
        raise LimitlabError(f"rows of the transition matrix{src} must sum to 1, but row {bad[0]} sums to {sums[bad[0]]:.8g}")
    return t


# --------------------------------------------------------------------------------------------
# Transition matrices
# --------------------------------------------------------------------------------------------

def uniform_transition(num_classes: int, p: float) -> np.ndarray:
    """Paper-convention uniform noise: ``T[i,i] = 1-p``, ``T[i,j] = p/(K-1)`` for ``j != i``.

    Parameters
    ----------
    num_classes : int
        K, the number of classes (>= 2).
    p : float
        Real corruption rate in [0, 1]: probability that a label changes.

    Returns
    -------
    transition : np.ndarray, shape (K, K), float64
        Row-stochastic matrix ``T[true, observed]``.
    """
    k, p = check_num_classes(num_classes), _check_rate(p)
    t = np.full((k, k), p / (k - 1))
    np.fill_diagonal(t, 1.0 - p)
    return t


def symmetric_transition(num_classes: int, p: float) -> np.ndarray:
    """DivideMix-convention symmetric noise: ``T = (1-p) I + p/K``.

    With probability p the label is redrawn uniformly over all K classes (possibly itself), so the
    real corruption rate is ``p (K-1) / K``.

    Parameters
    ----------
    num_classes : int
        K, the number of classes (>= 2).
    p : float
        Redraw probability in [0, 1].

    Returns
    -------
    transition : np.ndarray, shape (K, K), float64
        Row-stochastic matrix ``T[true, observed]``.
    """
    k, p = check_num_classes(num_classes), _check_rate(p)
    return (1.0 - p) * np.eye(k) + p / k


def pairflip_transition(num_classes: int, p: float) -> np.ndarray:
    """Co-teaching pair-flip noise: class ``i`` becomes ``(i+1) mod K`` with probability p.

    Parameters
    ----------
    num_classes : int
        K, the number of classes (>= 2).
    p : float
        Flip probability in [0, 1] (the real corruption rate).

    Returns
    -------
    transition : np.ndarray, shape (K, K), float64
        Row-stochastic matrix with ``T[i,i] = 1-p`` and ``T[i,(i+1) mod K] = p``.
    """
    k, p = check_num_classes(num_classes), _check_rate(p)
    t = (1.0 - p) * np.eye(k)
    t[np.arange(k), (np.arange(k) + 1) % k] += p
    return t


def pair_cifar10_transition(p: float, num_classes: int = 10) -> np.ndarray:
    """The paper's CIFAR-10 pair noise (one way; other classes stay clean).

    truck(9)->automobile(1), bird(2)->airplane(0), deer(4)->horse(7), cat(3)->dog(5), each with
    probability p. With balanced classes the real corruption rate is ``0.4 p``.

    Parameters
    ----------
    p : float
        Flip probability in [0, 1] for each of the four source classes.
    num_classes : int, default 10
        Must be 10 (this model only makes sense for CIFAR-10's class order).

    Returns
    -------
    transition : np.ndarray, shape (10, 10), float64
        Row-stochastic matrix ``T[true, observed]``.
    """
    if num_classes != 10:
        raise LimitlabError(f"pair-cifar10 noise needs the 10 CIFAR-10 classes but the data has {num_classes}; use pairflip:p or matrix:FILE instead")
    p = _check_rate(p)
    t = np.eye(10)
    for src, dst in _CIFAR10_PAIRS.items():
        t[src, src], t[src, dst] = 1.0 - p, p
    return t


def load_transition(path, num_classes: int) -> np.ndarray:
    """Load a user-given K x K transition matrix ``T[true, observed]``.

    ``.npy`` files are read with :func:`numpy.load` (no pickles); ``.csv`` files as comma-separated
    text; any other file as whitespace-separated text (``#`` starts a comment).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    num_classes : int
        K; the matrix must be K x K.

    Returns
    -------
    transition : np.ndarray, shape (K, K), float64
        The matrix, checked to be finite, non-negative, with rows summing to 1 (within 1e-6).
    """
    k = check_num_classes(num_classes)
    return check_transition(read_matrix_file(path, k), k, where=f"{str(path)!r}")
