"""Adam with an optional one-cycle learning rate, for the estimator's short fits.

Why not ``torch.optim.Adam`` + ``OneCycleLR``: every ``torch.optim`` optimizer imports ``torch._dynamo``
on its first use (``Optimizer.add_param_group`` is wrapped in ``torch._disable_dynamo``, and
``Optimizer.step`` in ``_use_grad_for_differentiable``, which imports it; fused, foreach and
capturable play no part). That import costs about 2 s of a fresh process, most of a fit on a
small table (benchmarks/RESULTS.md). The update itself is torch's own: the functional
``torch.optim.adam.adam`` (fused on CPU and CUDA), which imports nothing; the schedule follows
``torch.optim.lr_scheduler.OneCycleLR``'s defaults (cosine warm-up over 30% of the steps from lr/25
to lr with β₁ from 0.95 to 0.85, then cosine annealing to lr/25e4 with β₁ back to 0.95).
"""

from __future__ import annotations

import math

import torch
from torch.optim.adam import adam

PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR = 0.3, 25.0, 1e4
BETA1_LOW, BETA1_HIGH, BETA2, EPS = 0.85, 0.95, 0.999, 1e-8


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def one_cycle(step: int, total: int, lr: float) -> tuple[float, float]:
    """(learning rate, β₁) of step ``step`` (0-based) of ``total``, as OneCycleLR computes them."""
    initial, final = lr / DIV_FACTOR, lr / DIV_FACTOR / FINAL_DIV_FACTOR
    up = float(PCT_START * total) - 1
    if step <= up:
        pct = step / up if up > 0 else 1.0
        return _cos(initial, lr, pct), _cos(BETA1_HIGH, BETA1_LOW, pct)
    pct = min(1.0, (step - up) / max(total - 1 - up, 1e-12))
    return _cos(lr, final, pct), _cos(BETA1_LOW, BETA1_HIGH, pct)


class Adam:
    """Adam over ``params`` (the subset of ``torch.optim.Adam`` the training loop uses: ``step()`` and
    ``zero_grad()``), with a constant learning rate, or a one-cycle one over ``total_steps``."""

    def __init__(self, params, *, lr: float, weight_decay: float = 0.0, total_steps: int | None = None):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.total_steps = lr, weight_decay, total_steps
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.step_count = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def current(self) -> tuple[float, float]:
        """The learning rate and β₁ of the next step."""
        if self.total_steps is None:
            return self.lr, 0.9
        return one_cycle(min(self.step_count, self.total_steps - 1), self.total_steps, self.lr)

    @torch.no_grad()
    def step(self) -> None:
        lr, beta1 = self.current()
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        fused = all(self.params[i].device.type in ("cpu", "cuda") and self.params[i].is_floating_point() for i in live)
        adam([self.params[i] for i in live], [self.params[i].grad for i in live], [self.exp_avg[i] for i in live],
             [self.exp_avg_sq[i] for i in live], [], [self.steps[i] for i in live], foreach=False,
             fused=fused or None, amsgrad=False, beta1=beta1, beta2=BETA2, lr=lr,
             weight_decay=self.weight_decay, eps=EPS, maximize=False)
        self.step_count += 1
