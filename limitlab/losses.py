"""The paper's baseline losses (docs/method.md §3) as functions on tensors: logits [B, K], targets [B] int64.

Each returns a scalar batch mean unless it says otherwise. They know nothing of the loop; the
objectives in :mod:`limitlab.objectives` wrap them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def mae_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute error ``‖e_y − s(f)‖₁ = 2(1 − s(f)_y)``."""
    return (F.one_hot(targets, logits.shape[1]).to(logits.dtype) - logits.softmax(1)).abs().sum(1).mean()


def gce_loss(logits: torch.Tensor, targets: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu 2018): ``(1 − s(f)_y^q) / q``, q in (0, 1]
    (q → 0 is CE, q = 1 is MAE/2)."""
    p_y = logits.softmax(1).gather(1, targets[:, None]).squeeze(1)
    return ((1 - p_y.clamp_min(1e-12).pow(q)) / q).mean()


def forward_corrected_loss(logits: torch.Tensor, targets: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """Forward correction (Patrini et al. 2017): ``−log((s(f)ᵀ T)_y)``; ``transition`` is the K×K
    row-stochastic ``T[true, observed]``, so ``s(f) @ T`` is the predicted distribution of the
    noisy label."""
    noisy_probs = logits.softmax(1) @ transition.to(logits.dtype)
    return F.nll_loss(noisy_probs.clamp_min(1e-12).log(), targets)


def dmi_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """DMI (Xu et al. 2019): ``−log(|det(Eᵀ P)| + 1e-3)`` with E the B×K one-hot matrix of the
    labels and P the B×K softmax matrix. One value per batch (not a per-example mean)."""
    joint = F.one_hot(targets, logits.shape[1]).to(torch.float64).T @ logits.softmax(1).to(torch.float64)
    return -torch.log(torch.det(joint).abs() + 1e-3).to(logits.dtype)


def logit_gradient_noise(logits: torch.Tensor, dist: str, sigma: float) -> torch.Tensor:
    """A surrogate whose gradient adds noise of std ``sigma`` to each example's logit gradient
    (before the 1/B of the batch mean): Gaussian, or Laplace with scale σ/√2 (std σ).
    Its value is 0. Add it to a batch-mean loss (CE+GN)."""
    if dist == "gaussian":
        noise = torch.randn_like(logits) * sigma
    elif dist == "laplace":
        e = torch.empty((2, *logits.shape), dtype=logits.dtype, device=logits.device).exponential_()
        noise = (e[0] - e[1]) * (sigma / 2 ** 0.5)
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
