"""The paper's baseline losses (docs/method.md §3) as functions on tensors: logits [B, K], targets [B] int64.

Each returns a scalar batch mean by default; ``reduction="sum"`` sums the per-example losses and
``reduction="none"`` returns them as a [B] tensor, as in ``torch.nn`` (DMI is one value per batch:
see :func:`dmi_loss`). The same losses as ``nn.Module`` s, for code written in the PyTorch style:
:class:`MAELoss`, :class:`GCELoss`, :class:`ForwardCorrectedLoss`, :class:`DMILoss`. They know
nothing of the loop; the objectives in :mod:`limitlab.objectives` wrap them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .reductions import REDUCTIONS, check_reduction as _check_reduction, reduce as _reduce, unit_laplace  # noqa: F401 (REDUCTIONS: kept here too)


def mae_loss(logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error ``‖e_y − s(f)‖₁ = 2(1 − s(f)_y)`` per example.

    Parameters
    ----------
    logits : torch.Tensor
        [B, K] classifier logits.
    targets : torch.Tensor
        [B] int64 (noisy) labels in [0, K).
    reduction : str
        "mean" (default), "sum" or "none" (the [B] per-example losses).

    Returns
    -------
    torch.Tensor
        A scalar, or [B] for ``reduction="none"``.
    """
    per_example = (F.one_hot(targets, logits.shape[1]).to(logits.dtype) - logits.softmax(1)).abs().sum(1)
    return _reduce(per_example, reduction)


def gce_loss(logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7, *, reduction: str = "mean") -> torch.Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu 2018): ``(1 − s(f)_y^q) / q`` per example.

    q → 0 is cross-entropy, q = 1 is MAE/2.

    Parameters
    ----------
    logits : torch.Tensor
        [B, K] classifier logits.
    targets : torch.Tensor
        [B] int64 (noisy) labels in [0, K).
    q : float
        The exponent, in (0, 1].
    reduction : str
        "mean" (default), "sum" or "none" (the [B] per-example losses).

    Returns
    -------
    torch.Tensor
        A scalar, or [B] for ``reduction="none"``.
    """
    p_y = logits.softmax(1).gather(1, targets[:, None]).squeeze(1)
    return _reduce((1 - p_y.clamp_min(1e-12).pow(q)) / q, reduction)


def forward_corrected_loss(logits: torch.Tensor, targets: torch.Tensor, transition: torch.Tensor, *,
                           reduction: str = "mean") -> torch.Tensor:
    """Forward correction (Patrini et al. 2017): ``−log((s(f)ᵀ T)_y)`` per example.

    Parameters
    ----------
    logits : torch.Tensor
        [B, K] classifier logits.
    targets : torch.Tensor
        [B] int64 (noisy) labels in [0, K).
    transition : torch.Tensor
        The K×K row-stochastic ``T[true, observed]``, so ``s(f) @ T`` is the predicted
        distribution of the noisy label.
    reduction : str
        "mean" (default), "sum" or "none" (the [B] per-example losses).

    Returns
    -------
    torch.Tensor
        A scalar, or [B] for ``reduction="none"``.
    """
    _check_reduction(reduction)
    noisy_probs = logits.softmax(1) @ transition.to(logits.dtype)
    return F.nll_loss(noisy_probs.clamp_min(1e-12).log(), targets, reduction=reduction)


def dmi_loss(logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """DMI (Xu et al. 2019): ``−log(|det(Eᵀ P)| + 1e-3)`` for the batch.

    E is the B×K one-hot matrix of the labels and P the B×K softmax matrix. DMI is a batch-level
    loss: one value per batch, not a mean of per-example terms.

    Parameters
    ----------
    logits : torch.Tensor
        [B, K] classifier logits.
    targets : torch.Tensor
        [B] int64 (noisy) labels in [0, K).
    reduction : str
        "mean" (default) or "sum": both give the batch's one value, since there are no
        per-example terms to average or add. "none" raises ValueError.

    Returns
    -------
    torch.Tensor
        A scalar.
    """
    _check_reduction(reduction)
    if reduction == "none":
        raise ValueError("DMI is one value per batch (a log-determinant), so it has no per-example losses; "
                         "use reduction='mean' or 'sum'")
    joint = F.one_hot(targets, logits.shape[1]).to(torch.float64).T @ logits.softmax(1).to(torch.float64)
    return -torch.log(torch.det(joint).abs() + 1e-3).to(logits.dtype)


def logit_gradient_noise(logits: torch.Tensor, dist: str, sigma: float) -> torch.Tensor:
    """A surrogate whose gradient adds noise of std ``sigma`` to each example's logit gradient
    (before the 1/B of the batch mean): Gaussian, or Laplace with scale σ/√2 (std σ).
    Its value is 0. Add it to a batch-mean loss (CE+GN)."""
    if dist == "gaussian":
        noise = torch.randn_like(logits) * sigma
    elif dist == "laplace":
        noise = unit_laplace(logits.shape, logits) * (sigma / 2 ** 0.5)
    else:
        raise ValueError(f"gradient noise must be gaussian or laplace, not {dist!r}")
    surrogate = (logits * noise).sum(1).mean()
    return surrogate - surrogate.detach()


def estimate_transition(probs: np.ndarray, percentile: float = 97.0) -> np.ndarray:
    """Estimate ``T[true, observed]`` from a CE model's softmax outputs on the noisy training set
    (Patrini et al. 2017; docs/method.md §3): for each class i, the example at the ``percentile``-th
    percentile of ``p_i`` stands in for a perfect example of class i, and its softmax vector
    becomes row i; rows are normalised.

    Args:
        probs: [N, K] softmax outputs.
    Returns:
        [K, K] row-stochastic matrix.
    """
    probs = np.asarray(probs, dtype=np.float64)
    rows = []
    for i in range(probs.shape[1]):
        threshold = np.percentile(probs[:, i], percentile, method="higher")
        # The example whose p_i is that percentile value (the first one if several tie).
        rows.append(probs[np.flatnonzero(probs[:, i] == threshold)[0]])
    t = np.stack(rows)
    return t / t.sum(1, keepdims=True)


class _ReducedLoss(nn.Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MAELoss(_ReducedLoss):
    """Mean absolute error ``‖e_y − s(f)‖₁`` as a module: ``MAELoss()(logits, targets)``.

    Parameters
    ----------
    reduction : str
        "mean" (default), "sum" or "none", as in ``torch.nn``.

    See Also
    --------
    mae_loss : the function it calls.
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return mae_loss(logits, targets, reduction=self.reduction)


class GCELoss(_ReducedLoss):
    """Generalized cross-entropy ``(1 − s(f)_y^q) / q`` as a module: ``GCELoss(0.7)(logits, targets)``.

    Parameters
    ----------
    q : float
        The exponent, in (0, 1].
    reduction : str
        "mean" (default), "sum" or "none", as in ``torch.nn``.

    See Also
    --------
    gce_loss : the function it calls.
    """

    def __init__(self, q: float = 0.7, reduction: str = "mean"):
        super().__init__(reduction)
        if not 0.0 < q <= 1.0:
            raise ValueError(f"GCE's q must be in (0, 1], not {q}")
        self.q = q

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return gce_loss(logits, targets, self.q, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"q={self.q}, reduction={self.reduction!r}"


class ForwardCorrectedLoss(_ReducedLoss):
    """Forward-corrected cross-entropy ``−log((s(f)ᵀ T)_y)`` as a module.

    Parameters
    ----------
    transition : array-like
        The K×K row-stochastic noise matrix ``T[true, observed]`` (a tensor or array); kept as a
        buffer, so it moves with ``.to(device)``.
    reduction : str
        "mean" (default), "sum" or "none", as in ``torch.nn``.

    See Also
    --------
    forward_corrected_loss : the function it calls.
    estimate_transition : T from a cross-entropy model's outputs.
    """

    transition: torch.Tensor

    def __init__(self, transition, reduction: str = "mean"):
        super().__init__(reduction)
        t = torch.as_tensor(transition)
        if t.ndim != 2 or t.shape[0] != t.shape[1]:
            raise ValueError(f"the transition matrix must be K×K, not of shape {tuple(t.shape)}")
        self.register_buffer("transition", t)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return forward_corrected_loss(logits, targets, self.transition, reduction=self.reduction)


class DMILoss(_ReducedLoss):
    """DMI ``−log(|det(Eᵀ P)| + 1e-3)`` as a module: one value per batch.

    Parameters
    ----------
    reduction : str
        "mean" (default) or "sum", both the batch's one value; "none" is refused with a
        ValueError, because DMI has no per-example losses.

    See Also
    --------
    dmi_loss : the function it calls.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(reduction)
        if reduction == "none":
            raise ValueError("DMI is one value per batch (a log-determinant), so it has no per-example losses; "
                             "use reduction='mean' or 'sum'")

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return dmi_loss(logits, targets, reduction=self.reduction)
