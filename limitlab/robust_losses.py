"""The losses of the methods compared against today (docs/method.md, "Methods compared today"), as
functions on tensors: logits [B, K], targets [B] int64, a scalar batch mean unless said otherwise.

- :func:`sce_loss`: symmetric cross-entropy (Wang et al., ICCV 2019);
- :func:`nce_rce_loss`: normalised CE + reverse CE, an active-passive loss (Ma et al., ICML 2020);
- :func:`bootstrap_loss`: soft and hard bootstrapping (Reed et al., ICLR workshop 2015);
- :func:`label_smoothing_loss`: generalised label smoothing, negative rates included (Wei et al., ICML 2022);
- :func:`elr_loss` and :func:`elr_update_targets`: early-learning regularisation (Liu et al., NeurIPS 2020);
- :func:`sop_loss`: sparse over-parameterisation (Liu et al., ICML 2022);
- :func:`coteaching_losses`: Co-teaching's exchange of small-loss examples (Han et al., NeurIPS 2018).

The stateful ones take their state (ELR's targets, SOP's u and v) as arguments; the objectives in
:mod:`limitlab.objectives_state` keep that state per training example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# SCE's A = log 0, clipped (Wang et al. 2019, §4: "we set A = −4").
LOG_ZERO = -4.0


def reverse_ce(logits: torch.Tensor, targets: torch.Tensor, log_zero: float = LOG_ZERO) -> torch.Tensor:
    """Reverse cross-entropy −Σ_k p_k log q_k per example [B], q the one-hot label with log 0 = ``log_zero``:
    −log_zero · (1 − p_y)."""
    p_y = logits.float().softmax(1).gather(1, targets[:, None]).squeeze(1)
    return -log_zero * (1 - p_y)


def sce_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.1, beta: float = 1.0) -> torch.Tensor:
    """Symmetric cross-entropy α·CE + β·RCE (batch mean); RCE = −Σ_k p_k log q_k with log 0 = −4."""
    return alpha * F.cross_entropy(logits.float(), targets) + beta * reverse_ce(logits, targets).mean()


def nce_rce_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """Active-passive loss α·NCE + β·RCE (batch mean); NCE = (−log p_y) / (−Σ_k log p_k)."""
    log_p = logits.float().log_softmax(1)
    nce = log_p.gather(1, targets[:, None]).squeeze(1) / log_p.sum(1)
    return alpha * nce.mean() + beta * reverse_ce(logits, targets).mean()


def bootstrap_loss(logits: torch.Tensor, targets: torch.Tensor, beta: float = 0.95, hard: bool = False) -> torch.Tensor:
    """Bootstrapping: −Σ_k (β e_y + (1 − β) z)_k log p_k (batch mean), z = p (soft; its gradient flows, which
    makes it CE plus β-weighted entropy minimisation, as in the paper) or the one-hot argmax of p (hard)."""
    log_p = logits.float().log_softmax(1)
    k = logits.shape[1]
    z = F.one_hot(log_p.argmax(1), k).to(log_p.dtype) if hard else log_p.exp()
    target = beta * F.one_hot(targets, k).to(log_p.dtype) + (1 - beta) * z
    return -(target * log_p).sum(1).mean()


def label_smoothing_loss(logits: torch.Tensor, targets: torch.Tensor, rate: float = 0.1) -> torch.Tensor:
    """Generalised label smoothing: CE against (1 − r) e_y + r/K · 1 (batch mean), r in [−1, 1); r < 0
    is negative label smoothing."""
    log_p = logits.float().log_softmax(1)
    return ((1 - rate) * -log_p.gather(1, targets[:, None]).squeeze(1) - rate * log_p.mean(1)).mean()


def elr_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """ELR's predictions: the softmax clipped to [1e-4, 1 − 1e-4]."""
    return logits.float().softmax(1).clamp(1e-4, 1 - 1e-4)


def elr_update_targets(targets: torch.Tensor, probs: torch.Tensor, beta: float) -> torch.Tensor:
    """ELR's temporal ensembling t ← β t + (1 − β) p̂, p̂ the detached predictions renormalised to sum 1."""
    p = probs.detach()
    return beta * targets + (1 - beta) * p / p.sum(1, keepdim=True)


def elr_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, lam: float = 3.0) -> tuple:
    """ELR: CE + λ · mean log(1 − ⟨t_i, p_i⟩), ``targets`` [B, K] the batch's (already updated) t_i.
    Returns (loss, ce, regulariser)."""
    ce = F.cross_entropy(logits.float(), labels)
    reg = (1 - (targets * elr_probabilities(logits)).sum(1)).log().mean()
    return ce + lam * reg, ce, reg


def sop_loss(logits: torch.Tensor, labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor, eps: float = 1e-4) -> tuple:
    """SOP's loss for a batch with its rows u [B, 1] and v [B, K] of the per-example parameters.

    With y = e_label, U = clamp(u² y, 0, 1), V = clamp(v² (1 − y), 0, 1):
    - the adjusted prediction s = clamp(softmax(f) + U − sg(V), ≥ eps), L1-normalised, clamped to [eps, 1],
      and its cross-entropy −Σ_k y_k log s_k (batch mean);
    - the consistency term ‖onehot(argmax f) + U − V − y‖² (summed over classes, batch mean), through
      which v learns (the CE term stops v's gradient, as in the authors' code).
    Returns (loss, ce, mse).
    """
    y = F.one_hot(labels, logits.shape[1]).float()
    big_u = (u ** 2 * y).clamp(0, 1)
    big_v = (v ** 2 * (1 - y)).clamp(0, 1)
    s = (logits.float().softmax(1) + big_u - big_v.detach()).clamp_min(eps)
    s = F.normalize(s, p=1, dim=1, eps=eps).clamp(eps, 1.0)
    ce = -(y * s.log()).sum(1).mean()
    hard = F.one_hot(logits.detach().argmax(1), logits.shape[1]).float()
    mse = (hard + big_u - big_v - y).pow(2).sum(1).mean()
    return ce + mse, ce, mse


def coteaching_keep(num: int, forget_rate: float) -> int:
    """How many of ``num`` examples each network passes to its peer: ⌊(1 − R) · num⌋, at least 1."""
    return max(1, int((1 - forget_rate) * num))


def coteaching_losses(logits_1: torch.Tensor, logits_2: torch.Tensor, labels: torch.Tensor,
                      forget_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Co-teaching: each network picks its ⌊(1 − R)·B⌋ smallest-loss examples and its peer is trained on
    them. Returns (loss of network 1 on network 2's picks, loss of network 2 on network 1's picks), each
    a mean over the kept examples."""
    ce_1 = F.cross_entropy(logits_1.float(), labels, reduction="none")
    ce_2 = F.cross_entropy(logits_2.float(), labels, reduction="none")
    keep = coteaching_keep(len(labels), forget_rate)
    picked_by_1 = torch.argsort(ce_1.detach(), stable=True)[:keep]
    picked_by_2 = torch.argsort(ce_2.detach(), stable=True)[:keep]
    return ce_1[picked_by_2].mean(), ce_2[picked_by_1].mean()
