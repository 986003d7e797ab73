"""limit_loss / LIMIT against independent computations of docs/method.md §2's formulas."""

import math

import pytest
import torch
from torch import nn

from limitlab import LIMIT, limit_loss

B, K = 7, 5


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64) * 2
    q_logits = torch.randn(B, K, generator=g, dtype=torch.float64) * 2
    targets = torch.randint(0, K, (B,), generator=g)
    return logits, q_logits, targets


def _grads(q_dist, beta, **kw):
    logits, q_logits, targets = _batch()
    logits.requires_grad_(True)
    q_logits.requires_grad_(True)
    loss = limit_loss(logits, q_logits, targets, q_dist=q_dist, beta=beta, **kw)
    loss.backward()
    return loss, logits, q_logits, targets


def _closed_form_q_loss(f, q, y, q_dist, beta):
    """docs/method.md §2 written out independently: per-example sums, then batch means."""
    s_f, s_q = f.softmax(1), q.softmax(1)
    s_qy = s_q.gather(1, y[:, None]).squeeze(1)
    if q_dist == "gaussian":  # ‖s(q) − e_y‖² = Σ s_q² − 2 s_q,y + 1
        fit = (s_q.pow(2).sum(1) - 2 * s_qy + 1).mean()
    else:                     # ‖s(q) − e_y‖₁ = 2 (1 − s_q,y)
        fit = (2 * (1 - s_qy)).mean()
    return fit + beta * (s_f.detach() - s_q).pow(2).sum(1).mean()


@pytest.mark.parametrize("q_dist", ["gaussian", "laplace"])
@pytest.mark.parametrize("beta", [0.0, 3.0])
def test_classifier_logits_receive_predicted_gradient(q_dist, beta):
    _, logits, q_logits, _ = _grads(q_dist, beta)
    expected = (logits.detach().softmax(1) - q_logits.detach().softmax(1)) / B
    torch.testing.assert_close(logits.grad, expected)


@pytest.mark.parametrize("q_dist", ["gaussian", "laplace"])
@pytest.mark.parametrize("beta", [0.0, 3.0])
def test_q_logits_receive_only_the_q_loss_gradient(q_dist, beta):
    loss, logits, q_logits, targets = _grads(q_dist, beta)
    q = q_logits.detach().clone().requires_grad_(True)
    reference = _closed_form_q_loss(logits.detach(), q, targets, q_dist, beta)
    (expected,) = torch.autograd.grad(reference, q)
    torch.testing.assert_close(q_logits.grad, expected)
    torch.testing.assert_close(loss.detach(), reference.detach())  # the value is the q loss


def test_q_loss_gradient_matches_finite_differences():
    logits, q_logits, targets = _batch(1)
    q = q_logits.clone().requires_grad_(True)
    limit_loss(logits, q, targets, q_dist="laplace", beta=2.0, train_classifier=False).backward()
    eps = 1e-6
    for i, j in [(0, 0), (3, 2), (6, 4)]:
        plus, minus = q_logits.clone(), q_logits.clone()
        plus[i, j] += eps
        minus[i, j] -= eps
        fd = (limit_loss(logits, plus, targets, q_dist="laplace", beta=2.0) - limit_loss(logits, minus, targets, q_dist="laplace", beta=2.0)) / (2 * eps)
        assert q.grad[i, j].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8)


def test_classifier_parameters_follow_soft_target_cross_entropy():
    """Classifier weights get the gradient of soft-target CE toward s(q), through backprop."""
    torch.manual_seed(0)
    clf, qnet = nn.Linear(4, K), nn.Linear(4, K)
    x, y = torch.randn(16, 4), torch.randint(0, K, (16,))
    limit_loss(clf(x), qnet(x), y, q_dist="gaussian", beta=1.0).backward()
    got = [p.grad.clone() for p in clf.parameters()]
    clf.zero_grad()
    soft = qnet(x).softmax(1).detach()
    (-(soft * clf(x).log_softmax(1)).sum(1).mean()).backward()
    for a, b in zip(got, clf.parameters()):
        torch.testing.assert_close(a, b.grad)


def test_warmup_trains_only_q():
    logits, q_logits, targets = _batch()
    logits.requires_grad_(True)
    q_logits.requires_grad_(True)
    limit_loss(logits, q_logits, targets, train_classifier=False).backward()
    assert logits.grad is None or torch.count_nonzero(logits.grad) == 0
    assert torch.count_nonzero(q_logits.grad) > 0


@pytest.mark.parametrize("q_dist", ["gaussian", "laplace"])
def test_sampling_noise_has_the_right_scale(q_dist):
    torch.manual_seed(123)
    n, lam = 40000, 8.0
    logits = torch.randn(n, K, dtype=torch.float64, requires_grad=True)
    q_logits = torch.randn(n, K, dtype=torch.float64)
    targets = torch.randint(0, K, (n,))
    limit_loss(logits, q_logits, targets, q_dist=q_dist, sample_lambda=lam).backward()
    noise = logits.grad * n - (logits.detach().softmax(1) - q_logits.softmax(1))
    # Mean absolute deviation: Gaussian σ·√(2/π) with σ = √(1/(2λ)); Laplace: the scale 1/λ.
    expected_mad = math.sqrt(1 / (2 * lam)) * math.sqrt(2 / math.pi) if q_dist == "gaussian" else 1 / lam
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01 * expected_mad * 3)
    assert noise.abs().mean().item() == pytest.approx(expected_mad, rel=0.02)
    # Tail shape separates the two families: kurtosis 3 (Gaussian) vs 6 (Laplace).
    kurtosis = (noise.pow(4).mean() / noise.pow(2).mean() ** 2).item()
    assert kurtosis == pytest.approx(3.0 if q_dist == "gaussian" else 6.0, rel=0.1)


def test_limit_module_wraps_limit_loss():
    torch.manual_seed(0)
    clf, qnet = nn.Linear(4, K), nn.Linear(4, K)
    model = LIMIT(clf, qnet, q_dist="laplace", beta=2.0)
    x, y = torch.randn(9, 4), torch.randint(0, K, (9,))
    loss, logits = model(x, y)
    torch.testing.assert_close(logits, clf(x))
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    limit_loss(clf(x), qnet(x), y, q_dist="laplace", beta=2.0).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad)
    assert set(model.parts) == {"q_fit", "grad_norm_penalty"}


def test_bad_q_dist_is_rejected():
    logits, q_logits, targets = _batch()
    with pytest.raises(ValueError, match="q_dist"):
        limit_loss(logits, q_logits, targets, q_dist="cauchy")
