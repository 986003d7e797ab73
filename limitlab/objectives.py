"""Training objectives behind the loop's one interface; :mod:`limitlab.methods` registers them by name.

An objective is an ``nn.Module`` that owns its networks and has
- ``classifier``: the network that is evaluated, checkpointed as "the model" and kept;
- ``forward(x, y) -> (loss, classifier_logits)`` for a training batch (one backward per step);
- ``parts``: a dict of detached scalar loss parts from the last call (logged per epoch);
- ``start_epoch(epoch)``: called before each training epoch (e.g. LIMIT's warm-up);
- ``uses_index``: when True the loop calls ``forward(x, y, index)`` with the batch's positions in
  the training split, for per-example state (targets or parameters kept as buffers or parameters of
  the objective, so checkpoints carry them);
- ``optimized_parameters()``: what the loop's optimizer updates (default: every parameter);
- ``after_step()``: called after each optimizer step, for updates the objective makes itself.
A new method is one registration in :mod:`limitlab.methods` (and a class here if none of these fits);
the loop does not change.
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import nn

from . import losses
from .limit import LIMIT


class Objective(nn.Module):
    """The loop's interface to a method: ``classifier``, ``forward(x, y) -> (loss, logits)``, ``parts``,
    ``start_epoch(epoch)`` (see the module docstring)."""

    classifier: nn.Module
    uses_index: bool = False

    def __init__(self):
        super().__init__()
        self.parts: dict = {}

    def start_epoch(self, epoch: int) -> None:
        pass

    def optimized_parameters(self):
        return self.parameters()

    def after_step(self) -> None:
        pass


class CrossEntropy(Objective):
    """Plain cross-entropy on the noisy labels (the CE baseline)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x, y):
        logits = self.classifier(x)
        loss = F.cross_entropy(logits, y)
        self.parts = {"ce": loss.detach()}
        return loss, logits


class LimitObjective(LIMIT, Objective):
    """LIMIT (see :mod:`limitlab.limit`) with warm-up: for the first ``warmup`` epochs only q trains."""

    def __init__(self, classifier, q_network, q_dist, beta, sample_lambda=None, warmup: int = 0):
        LIMIT.__init__(self, classifier, q_network, q_dist=q_dist, beta=beta, sample_lambda=sample_lambda)
        self.warmup = warmup

    def start_epoch(self, epoch: int) -> None:
        self.train_classifier = epoch > self.warmup  # epochs count from 1


class GradientNoiseCE(Objective):
    """CE+GN: cross-entropy with noise of std σ added to each example's logit gradient."""

    def __init__(self, classifier: nn.Module, dist: str, sigma: float):
        super().__init__()
        self.classifier, self.dist, self.sigma = classifier, dist, sigma

    def forward(self, x, y):
        logits = self.classifier(x)
        ce = F.cross_entropy(logits, y)
        self.parts = {"ce": ce.detach()}
        return ce + losses.logit_gradient_noise(logits, self.dist, self.sigma), logits


class LossOnLogits(Objective):
    """Any loss of (logits, targets): MAE, GCE, DMI, forward correction."""

    def __init__(self, classifier: nn.Module, loss_fn: Callable, name: str):
        super().__init__()
        self.classifier, self.loss_fn, self.name = classifier, loss_fn, name

    def forward(self, x, y):
        logits = self.classifier(x)
        loss = self.loss_fn(logits, y)
        self.parts = {self.name: loss.detach()}
        return loss, logits


class Penalize(Objective):
    """The soft-regularization baseline (docs/method.md §2): CE + λ‖z‖²‖e_y − s(q)‖² (+ β‖z‖²‖s(f) − s(q)‖²)
    per example, z the input of the classifier's bias-free last layer; one optimizer over both
    networks, so q learns from the penalty terms."""

    def __init__(self, classifier: nn.Module, q_network: nn.Module, lam: float, beta: float = 0.0):
        super().__init__()
        self.classifier, self.q_network, self.lam, self.beta = classifier, q_network, lam, beta

    def forward(self, x, y):
        z = self.classifier.forward_features(x)
        logits = self.classifier.head(z)
        p_q = self.q_network(x).softmax(1)
        z_sq = z.pow(2).sum(1)
        ce = F.cross_entropy(logits, y)
        penalty = (z_sq * (F.one_hot(y, logits.shape[1]).to(p_q.dtype) - p_q).pow(2).sum(1)).mean()
        loss = ce + self.lam * penalty
        self.parts = {"ce": ce.detach(), "penalty": penalty.detach()}
        if self.beta:
            agreement = (z_sq * (logits.softmax(1) - p_q).pow(2).sum(1)).mean()
            loss = loss + self.beta * agreement
            self.parts["agreement_penalty"] = agreement.detach()
        return loss, logits
