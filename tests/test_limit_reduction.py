"""limit_loss's ``reduction=``: "sum" is the reference code's summed predicted gradient, "none" the
per-example losses; checked against the formulas written out per example."""

import numpy as np
import pytest
import torch
from torch import nn

from limitlab import LIMIT, limit_loss

B, K = 7, 5


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, K, generator=g, dtype=torch.float64) * 2
    q_logits = torch.randn(B, K, generator=g, dtype=torch.float64) * 2
    return logits, q_logits, torch.randint(0, K, (B,), generator=g)


def _per_example_q_loss(f, q, y, q_dist, beta):
    """‖s(q) − e_y‖² (gaussian) or ‖s(q) − e_y‖₁ (laplace), plus β‖s(f) − s(q)‖², per example, in NumPy."""
    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    s_f, s_q, e = softmax(f), softmax(q), np.eye(K)[y]
    fit = ((s_q - e) ** 2).sum(1) if q_dist == "gaussian" else np.abs(s_q - e).sum(1)
    return fit + beta * ((s_f - s_q) ** 2).sum(1)


def _run(q_dist, beta, reduction):
    logits, q_logits, y = _batch()
    logits.requires_grad_(True)
    q_logits.requires_grad_(True)
    loss = limit_loss(logits, q_logits, y, q_dist=q_dist, beta=beta, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss, logits, q_logits, y


@pytest.mark.parametrize("q_dist", ["gaussian", "laplace"])
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_classifier_logits_receive_the_unscaled_predicted_gradient(q_dist, reduction):
    _, logits, q_logits, _ = _run(q_dist, 3.0, reduction)
    s_f, s_q = logits.detach().softmax(1).numpy(), q_logits.detach().softmax(1).numpy()
    np.testing.assert_allclose(logits.grad.numpy(), s_f - s_q, rtol=1e-12, atol=1e-15)  # ĝ, not ĝ / B


@pytest.mark.parametrize("q_dist", ["gaussian", "laplace"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_value_is_the_reduced_q_loss(q_dist, reduction):
    loss, logits, q_logits, y = _run(q_dist, 2.0, reduction)
    per_example = _per_example_q_loss(logits.detach().numpy(), q_logits.detach().numpy(), y.numpy(), q_dist, 2.0)
    expected = {"mean": per_example.mean(), "sum": per_example.sum(), "none": per_example}[reduction]
    assert loss.shape == ((B,) if reduction == "none" else ())
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("q_dist", ["gaussian", "laplace"])
def test_sum_is_b_times_mean_for_both_networks(q_dist):
    _, f_mean, q_mean, _ = _run(q_dist, 3.0, "mean")
    _, f_sum, q_sum, _ = _run(q_dist, 3.0, "sum")
    torch.testing.assert_close(f_sum.grad, f_mean.grad * B)
    torch.testing.assert_close(q_sum.grad, q_mean.grad * B)


def test_default_is_mean_bit_for_bit():
    logits, q_logits, y = _batch(1)
    logits, q_logits = logits.float(), q_logits.float()
    grads = []
    for kw in ({}, {"reduction": "mean"}):
        f, q = logits.clone().requires_grad_(True), q_logits.clone().requires_grad_(True)
        loss = limit_loss(f, q, y, q_dist="laplace", beta=10.0, **kw)
        loss.backward()
        grads.append((loss.detach(), f.grad, q.grad))
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_limit_module_passes_reduction_through():
    torch.manual_seed(0)
    clf, qnet = nn.Linear(4, K), nn.Linear(4, K)
    x, y = torch.randn(9, 4), torch.randint(0, K, (9,))
    loss, _ = LIMIT(clf, qnet, q_dist="gaussian", beta=1.0, reduction="sum")(x, y)
    expected = limit_loss(clf(x), qnet(x), y, q_dist="gaussian", beta=1.0, reduction="sum")
    torch.testing.assert_close(loss, expected)
    assert loss.item() == pytest.approx(9 * limit_loss(clf(x), qnet(x), y, q_dist="gaussian", beta=1.0).item())


def test_unknown_reduction_is_refused():
    logits, q_logits, y = _batch()
    with pytest.raises(ValueError, match="reduction must be one of mean, sum, none"):
        limit_loss(logits, q_logits, y, reduction="batchmean")
    with pytest.raises(ValueError, match="reduction must be one of"):
        LIMIT(nn.Linear(2, K), nn.Linear(2, K), reduction="avg")
