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

from .errors import LimitlabError
from .limit import LIMIT


class Objective(nn.Module):
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


# name -> (one-line description, builder(make_model, config) -> Objective).
# make_model(role) builds a fresh network of the run's architecture; role is "classifier" or "q".
METHODS: dict[str, tuple[str, Callable]] = {
    "ce": ("cross-entropy on the noisy labels",
           lambda make_model, c: CrossEntropy(make_model("classifier"))),
    "limit-g": ("LIMIT_G: classifier trained by q's predicted gradient, Gaussian q loss (+β penalty)",
                lambda make_model, c: LimitObjective(make_model("classifier"), make_model("q"), "gaussian",
                                                     c.beta, c.sample_lambda, c.warmup)),
    "limit-l": ("LIMIT_L: as limit-g with the Laplace (absolute error) q loss",
                lambda make_model, c: LimitObjective(make_model("classifier"), make_model("q"), "laplace",
                                                     c.beta, c.sample_lambda, c.warmup)),
}


def build_objective(method: str, make_model: Callable[[str], nn.Module], config) -> Objective:
    """Build objective ``method`` with networks from ``make_model`` and options from ``config``."""
    if method not in METHODS:
        raise LimitlabError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[method][1](make_model, config)
