"""LIMIT: Limiting label Information MemorizaTion (Harutyunyan et al., ICML 2020).

Two networks of the same shape: the classifier ``f`` (kept and evaluated) and the q-network ``q``
(it sees the labels; the classifier never does). Per example, the cross-entropy gradient on the
classifier's logits is ``g = s(f) - e_y`` (``s`` = softmax, ``e_y`` = one-hot noisy label). LIMIT
hands the classifier a prediction of it that does not use the label,

    ĝ = s(f).detach() - s(q),

so the label can reach the classifier's weights only through ``q``, and the q-network is trained to
make ``ĝ`` close to ``g`` while keeping ``ĝ`` small:

    q loss = ‖ĝ - g‖²₂ = ‖s(q) - e_y‖²₂        (Gaussian, LIMIT_G)
           or ‖ĝ - g‖₁  = ‖s(q) - e_y‖₁         (Laplace,  LIMIT_L)
           + β · ‖ĝ‖²₂                           (the predicted-gradient norm penalty)

Everything here is a batch mean by default, like cross-entropy. (The paper's reference code sums ĝ
over the batch, which ``reduction="sum"`` reproduces; with Adam, whose steps are invariant to the
gradient's scale, the two are nearly the same.)

Use it in your own loop with your own two networks::

    loss = limit_loss(classifier(x), q_network(x), y, q_dist="laplace", beta=10.0)
    loss.backward()   # logits get (s(f) - s(q)) / B, q_logits get the q loss gradient

or wrap the networks: ``loss, logits = LIMIT(classifier, q_network, beta=10.0)(x, y)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .reductions import REDUCTIONS, check_reduction, reduce, unit_laplace

__all__ = ["limit_loss", "LIMIT", "predicted_gradient_noise", "Q_DISTRIBUTIONS", "REDUCTIONS"]

Q_DISTRIBUTIONS = ("gaussian", "laplace")


def predicted_gradient_noise(shape, q_dist: str, sample_lambda: float, like: torch.Tensor) -> torch.Tensor:
    """Noise for the sampling variant (+S): Gaussian with std sqrt(1/(2λ)) or Laplace with scale 1/λ."""
    if q_dist == "gaussian":
        return torch.randn(shape, dtype=like.dtype, device=like.device) * math.sqrt(1.0 / (2.0 * sample_lambda))
    return unit_laplace(shape, like) / sample_lambda


def limit_loss(
    logits: torch.Tensor,
    q_logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    q_dist: str = "gaussian",
    beta: float = 0.0,
    sample_lambda: float | None = None,
    train_classifier: bool = True,
    parts: dict | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """LIMIT's training loss for one batch.

    Args:
        logits: [B, K] classifier logits ``f(x)``.
        q_logits: [B, K] q-network logits ``q(x)``.
        targets: [B] int64 noisy labels in [0, K).
        q_dist: "gaussian" (LIMIT_G, squared-error q loss) or "laplace" (LIMIT_L, absolute-error q loss).
        beta: weight of the predicted-gradient norm penalty ``β‖s(f) - s(q)‖²``, trained into q only.
        sample_lambda: if given, the classifier receives a fresh sample around ĝ at every call
            (Gaussian std sqrt(1/(2λ)) or Laplace scale 1/λ, by ``q_dist``) instead of ĝ itself.
        train_classifier: False during warm-up: only the q-network learns.
        parts: if a dict is given, the detached loss parts are stored in it (reduced like the loss).
        reduction: "mean" (default): batch means, ``logits`` receive ``ĝ / B``. "sum": the reference
            code's convention, ``logits`` receive ``ĝ`` itself and the q loss is summed over the
            batch. "none": a [B] tensor of per-example losses; ``loss.sum().backward()`` then
            equals "sum" and ``loss.mean().backward()`` equals "mean".

    Returns:
        A scalar whose value is the q loss and whose ``backward()`` delivers exactly
        ``ĝ / B`` (plus the sampling noise / B) to ``logits`` — nothing from the labels — and the
        gradient of the q loss to ``q_logits``. The q-network gets no gradient through the
        classifier's path.
    """
    if q_dist not in Q_DISTRIBUTIONS:
        raise ValueError(f"q_dist must be one of {Q_DISTRIBUTIONS}, not {q_dist!r}")
    check_reduction(reduction)
    p_f = logits.detach().softmax(dim=1)
    p_q = q_logits.softmax(dim=1)
    g_hat = p_f - p_q  # ĝ, differentiable w.r.t. q only (for the penalty)

    # q-network: match the true gradient g = s(f) - e_y, i.e. ĝ - g = e_y - s(q), and keep ĝ small.
    mismatch = p_q - F.one_hot(targets, num_classes=logits.shape[1]).to(p_q.dtype)
    fit = reduce((mismatch.pow(2) if q_dist == "gaussian" else mismatch.abs()).sum(dim=1), reduction)
    penalty = reduce(g_hat.pow(2).sum(dim=1), reduction)
    q_loss = fit + beta * penalty

    # Classifier: a surrogate whose gradient w.r.t. the logits is ĝ / B (ĝ with "sum"; ĝ detached, so
    # q gets nothing from here). Subtracting its detached value keeps the returned value = the q loss.
    g_hat = g_hat.detach()
    if sample_lambda is not None:
        g_hat = g_hat + predicted_gradient_noise(g_hat.shape, q_dist, sample_lambda, g_hat)
    if train_classifier:
        surrogate = reduce((logits * g_hat).sum(dim=1), reduction)
        q_loss = q_loss + (surrogate - surrogate.detach())

    if parts is not None:
        parts["q_fit"] = fit.detach()
        parts["grad_norm_penalty"] = penalty.detach()
    return q_loss


class LIMIT(nn.Module):
    """A classifier and a q-network trained together with :func:`limit_loss`.

    ``forward(x, y)`` returns ``(loss, classifier_logits)``; call ``loss.backward()`` and step one
    optimizer over ``self.parameters()`` (both networks). ``reduction`` is passed to
    :func:`limit_loss`. ``self.classifier`` is the model to keep.
    ``self.parts`` holds the detached loss parts of the last call.
    """

    def __init__(
        self,
        classifier: nn.Module,
        q_network: nn.Module,
        *,
        q_dist: str = "gaussian",
        beta: float = 0.0,
        sample_lambda: float | None = None,
        reduction: str = "mean",
    ):
        super().__init__()
        if q_dist not in Q_DISTRIBUTIONS:
            raise ValueError(f"q_dist must be one of {Q_DISTRIBUTIONS}, not {q_dist!r}")
        check_reduction(reduction)
        self.reduction = reduction
        self.classifier = classifier
        self.q_network = q_network
        self.q_dist = q_dist
        self.beta = beta
        self.sample_lambda = sample_lambda
        self.train_classifier = True  # set False for warm-up epochs (only q learns)
        self.parts: dict = {}

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_classifier):
            logits = self.classifier(x)
        loss = limit_loss(
            logits, self.q_network(x), y, q_dist=self.q_dist, beta=self.beta, sample_lambda=self.sample_lambda,
            train_classifier=self.train_classifier, parts=self.parts, reduction=self.reduction,
        )
        return loss, logits
