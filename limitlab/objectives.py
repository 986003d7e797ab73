"""Training objectives behind the loop's one interface, registered by name (``--method``).

An objective is an ``nn.Module`` that owns its networks and has
- ``classifier``: the network that is evaluated, checkpointed as "the model" and kept;
- ``forward(x, y) -> (loss, classifier_logits)`` for a training batch (one backward per step);
- ``parts``: a dict of detached scalar loss parts from the last call (logged per epoch);
- ``start_epoch(epoch)``: called before each training epoch (e.g. LIMIT's warm-up).
A new method is one new class here and one registry entry; the loop does not change.
"""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import nn

from . import losses
from .errors import LimitlabError
from .limit import LIMIT


class Objective(nn.Module):
    """The loop's interface to a method: ``classifier``, ``forward(x, y) -> (loss, logits)``, ``parts``,
    ``start_epoch(epoch)`` (see the module docstring)."""

    classifier: nn.Module

    def __init__(self):
        super().__init__()
        self.parts: dict = {}

    def start_epoch(self, epoch: int) -> None:
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
        LIMIT.__init__(self, classifier, q_network, q_dist, beta, sample_lambda)
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
    """The soft-regularization baseline (SPEC §2): CE + λ‖z‖²‖e_y − s(q)‖² (+ β‖z‖²‖s(f) − s(q)‖²)
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


def parse_grad_noise(spec: str) -> tuple[str, float]:
    """``gaussian:0.1`` / ``laplace:0.1`` → (distribution, σ)."""
    dist, _, value = spec.partition(":")
    try:
        sigma = float(value)
    except ValueError:
        sigma = -1.0
    if dist not in ("gaussian", "laplace") or not sigma >= 0:
        raise LimitlabError(f"--grad-noise {spec!r} is not DIST:SIGMA with DIST gaussian or laplace and SIGMA >= 0, "
                            "e.g. gaussian:0.1")
    return dist, sigma


def _limit(q_dist):
    def build(make_model, c, ctx):
        # The "+" variant: q starts from a CE classifier, so it takes the classifier's architecture.
        q = make_model("classifier" if c.q_init_from else "q")
        return LimitObjective(make_model("classifier"), q, q_dist, c.beta, c.sample_lambda, c.warmup)
    return build


# name -> (one-line description, builder(make_model, config, context) -> Objective).
# make_model(role, head_bias=True) builds a fresh network of the run's architecture (role
# "classifier" or "q"); context["transition"] is FW's T as a tensor.
METHODS: dict[str, tuple[str, Callable]] = {
    "ce": ("cross-entropy on the noisy labels",
           lambda make_model, c, ctx: CrossEntropy(make_model("classifier"))),
    "limit-g": ("LIMIT_G: classifier trained by q's predicted gradient, Gaussian q loss (+β penalty)",
                _limit("gaussian")),
    "limit-l": ("LIMIT_L: as limit-g with the Laplace (absolute error) q loss", _limit("laplace")),
    "ce-gn": ("CE with Gaussian/Laplace noise of std σ on each example's logit gradient (--grad-noise)",
              lambda make_model, c, ctx: GradientNoiseCE(make_model("classifier"), *parse_grad_noise(c.grad_noise))),
    "mae": ("mean absolute error ‖e_y − s(f)‖₁",
            lambda make_model, c, ctx: LossOnLogits(make_model("classifier"), losses.mae_loss, "mae")),
    "gce": ("generalized cross-entropy (1 − s(f)_y^q)/q (--gce-q)",
            lambda make_model, c, ctx: LossOnLogits(make_model("classifier"),
                                                    lambda f, y: losses.gce_loss(f, y, c.gce_q), "gce")),
    "fw": ("forward correction −log((s(f)ᵀT)_y); T estimated from the --init-from CE run, or --transition FILE",
           lambda make_model, c, ctx: LossOnLogits(make_model("classifier"),
                                                   lambda f, y: losses.forward_corrected_loss(f, y, ctx["transition"]),
                                                   "fw")),
    "dmi": ("DMI −log(|det(EᵀP)| + 1e-3), fine-tuned from a CE run (--init-from, set --lr)",
            lambda make_model, c, ctx: LossOnLogits(make_model("classifier"), losses.dmi_loss, "dmi")),
    "penalize": ("soft regularization: CE + λ‖z‖²‖e_y − s(q)‖² (--penalty-lambda, --penalty-beta)",
                 lambda make_model, c, ctx: Penalize(make_model("classifier", head_bias=False),
                                                     make_model("q"), c.penalty_lambda,
                                                     c.penalty_beta)),
}


def build_objective(method: str, make_model: Callable[..., nn.Module], config, context: dict | None = None) -> Objective:
    """Build objective ``method`` with networks from ``make_model`` and options from ``config``."""
    if method not in METHODS:
        raise LimitlabError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[method][1](make_model, config, context or {})
