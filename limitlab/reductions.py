"""What every loss shares: the batch reductions ("mean", "sum", "none", as in ``torch.nn``) and the
Laplace noise that LIMIT's sampled gradient (+S) and CE's gradient noise draw."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> None:
    """ValueError unless ``reduction`` is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, not {reduction!r}")


def reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    """The batch mean, the sum, or (``"none"``) the per-example values themselves."""
    check_reduction(reduction)
    if reduction == "mean":
        return per_example.mean()
    return per_example.sum() if reduction == "sum" else per_example


def unit_laplace(shape, like: torch.Tensor) -> torch.Tensor:
    """Laplace noise of scale 1 (std √2) in ``like``'s dtype and device: the difference of two unit
    exponentials, exact, and drawn from torch's global generator only."""
    e = torch.empty((2, *shape), dtype=like.dtype, device=like.device).exponential_()
    return e[0] - e[1]
