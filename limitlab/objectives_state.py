"""Objectives with state beyond the networks' weights (the interface of :mod:`limitlab.objectives`):

- :class:`ELR`: a target vector per training example (a buffer, indexed by the example's position);
- :class:`SOP`: parameters u_i, v_i per training example, updated by their own SGD after each step;
- :class:`CoTeaching`: two networks that train each other on their small-loss examples.

The state lives in buffers and parameters, so checkpoints carry it and a resumed run continues exactly.
Per-example state needs every process to see every update, so :func:`refuse_distributed` stops ELR and
SOP under DDP.
"""

from __future__ import annotations

import torch
from torch import nn

from . import robust_losses
from .errors import LimitlabError
from .objectives import Objective


def refuse_distributed(method: str) -> None:
    """One sentence when this process is one of several (torchrun): per-example state would only be
    updated on the process that saw the example."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise LimitlabError(f"--method {method} keeps state per training example, which limitlab does not share "
                            "between processes; run it on one GPU (without torchrun)")


class ELR(Objective):
    """Early-learning regularisation (Liu et al., NeurIPS 2020): CE + λ · mean log(1 − ⟨t_i, p_i⟩), the
    targets t_i a running average t ← β t + (1 − β) p̂ of the detached, normalised predictions, updated
    for the batch's examples before the loss (as in the authors' code)."""

    uses_index = True
    targets: torch.Tensor

    def __init__(self, classifier: nn.Module, num_train: int, num_classes: int, lam: float = 3.0, beta: float = 0.7):
        super().__init__()
        self.classifier, self.lam, self.beta = classifier, lam, beta
        self.register_buffer("targets", torch.zeros(num_train, num_classes))

    def forward(self, x, y, index):
        logits = self.classifier(x)
        with torch.no_grad():
            self.targets[index] = robust_losses.elr_update_targets(
                self.targets[index], robust_losses.elr_probabilities(logits), self.beta)
        loss, ce, reg = robust_losses.elr_loss(logits, y, self.targets[index], self.lam)
        self.parts = {"ce": ce.detach(), "elr": reg.detach()}
        return loss, logits


class SOP(Objective):
    """Sparse over-parameterisation (Liu et al., ICML 2022): per example, u_i (one number) and v_i (K
    numbers), initialised N(0, 1e-8²), model the label noise; see :func:`robust_losses.sop_loss`. The
    loop's Adam updates the classifier only (``optimized_parameters``); u and v take plain SGD steps
    (learning rates ``lr_u``, ``lr_v``, no momentum or weight decay) from the same backward pass, in
    ``after_step``."""

    uses_index = True

    def __init__(self, classifier: nn.Module, num_train: int, num_classes: int, lr_u: float = 10.0,
                 lr_v: float = 10.0):
        super().__init__()
        self.classifier, self.lr_u, self.lr_v = classifier, lr_u, lr_v
        self.u = nn.Parameter(torch.randn(num_train, 1) * 1e-8)
        self.v = nn.Parameter(torch.randn(num_train, num_classes) * 1e-8)

    def optimized_parameters(self):
        return self.classifier.parameters()

    def forward(self, x, y, index):
        logits = self.classifier(x)
        loss, ce, mse = robust_losses.sop_loss(logits, y, self.u[index], self.v[index])
        self.parts = {"ce": ce.detach(), "consistency": mse.detach()}
        return loss, logits

    @torch.no_grad()
    def after_step(self) -> None:
        for p, lr in ((self.u, self.lr_u), (self.v, self.lr_v)):
            if p.grad is not None:
                p.sub_(lr * p.grad)
                p.grad = None


class CoTeaching(Objective):
    """Co-teaching (Han et al., NeurIPS 2018): two networks of the same architecture, each trained on the
    ⌊(1 − R(t))·B⌋ examples of the batch with the smallest loss under its peer; R(t) = τ · min(t / 10, 1),
    t the number of finished epochs (0 in the first, as in the authors' code). One backward over the sum
    of the two losses (the same updates as two optimizers: the losses share no parameters). The first
    network is the ``classifier``; the second is ``peer``."""

    def __init__(self, classifier: nn.Module, peer: nn.Module, tau: float, ramp_epochs: int = 10):
        super().__init__()
        self.classifier, self.peer, self.tau, self.ramp_epochs = classifier, peer, tau, ramp_epochs
        self.forget_rate = 0.0

    def start_epoch(self, epoch: int) -> None:
        self.forget_rate = self.tau * min((epoch - 1) / self.ramp_epochs, 1.0)

    def forward(self, x, y):
        logits, peer_logits = self.classifier(x), self.peer(x)
        loss_1, loss_2 = robust_losses.coteaching_losses(logits, peer_logits, y, self.forget_rate)
        keep = robust_losses.coteaching_keep(len(y), self.forget_rate)
        self.parts = {"ce_classifier": loss_1.detach(), "ce_peer": loss_2.detach(),
                      "kept_fraction": torch.tensor(keep / len(y), device=logits.device)}
        return loss_1 + loss_2, logits
