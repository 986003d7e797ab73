"""Baseline losses of docs/method.md §3 against independent computations on small tensors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from limitlab import losses
from limitlab.errors import LimitlabError
from limitlab.methods import parse_grad_noise


def _batch(b=6, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, generator=g, dtype=torch.float64) * 2, torch.randint(0, k, (b,), generator=g)


def test_mae_is_twice_one_minus_the_label_probability():
    f, y = _batch()
    p_y = np.array([np.exp(r[c]) / np.exp(r).sum() for r, c in zip(f.numpy(), y.numpy())])
    assert losses.mae_loss(f, y).item() == pytest.approx(np.mean(2 * (1 - p_y)))


@pytest.mark.parametrize("q", [0.3, 0.7, 1.0])
def test_gce_formula(q):
    f, y = _batch()
    p_y = np.array([np.exp(r[c]) / np.exp(r).sum() for r, c in zip(f.numpy(), y.numpy())])
    assert losses.gce_loss(f, y, q).item() == pytest.approx(np.mean((1 - p_y ** q) / q))
    if q == 1.0:
        assert losses.gce_loss(f, y, q).item() == pytest.approx(losses.mae_loss(f, y).item() / 2)


def test_gce_approaches_ce_as_q_goes_to_zero():
    f, y = _batch()
    assert losses.gce_loss(f, y, 1e-6).item() == pytest.approx(F.cross_entropy(f, y).item(), rel=1e-4)


def test_forward_correction_with_a_known_matrix():
    f, y = _batch(k=3)
    t = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.0, 0.7]], dtype=torch.float64)
    s = f.softmax(1).numpy()
    expected = np.mean([-np.log(sum(s[n, i] * t[i, y[n]].item() for i in range(3))) for n in range(len(y))])
    assert losses.forward_corrected_loss(f, y, t).item() == pytest.approx(expected)
    # identity T is plain cross-entropy
    assert losses.forward_corrected_loss(f, y, torch.eye(3, dtype=torch.float64)).item() == \
        pytest.approx(F.cross_entropy(f, y).item())


def test_dmi_with_a_hand_computed_determinant():
    f = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    s = f.softmax(1).numpy()
    # Eᵀ P: row c sums the softmax vectors of the examples labelled c
    a, b = s[0]
    c, d = s[1] + s[2]
    expected = -np.log(abs(a * d - b * c) + 1e-3)
    assert losses.dmi_loss(f, y).item() == pytest.approx(expected)


@pytest.mark.parametrize("dist", ["gaussian", "laplace"])
def test_gradient_noise_has_std_sigma_per_example(dist):
    torch.manual_seed(5)
    n, k, sigma = 20000, 10, 0.3
    f = torch.randn(n, k, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, k, (n,))
    loss = F.cross_entropy(f, y) + losses.logit_gradient_noise(f, dist, sigma)
    assert loss.item() == pytest.approx(F.cross_entropy(f, y).item())  # the surrogate adds no value
    loss.backward()
    noise = f.grad * n - (f.detach().softmax(1) - F.one_hot(y, k))
    assert noise.std().item() == pytest.approx(sigma, rel=0.02)
    kurtosis = (noise.pow(4).mean() / noise.pow(2).mean() ** 2).item()
    assert kurtosis == pytest.approx(3.0 if dist == "gaussian" else 6.0, rel=0.1)


def test_grad_noise_spec_parsing():
    assert parse_grad_noise("laplace:0.03") == ("laplace", 0.03)
    for bad in ["gaussian", "cauchy:0.1", "gaussian:-1", "gaussian:x"]:
        with pytest.raises(LimitlabError, match="grad-noise"):
            parse_grad_noise(bad)


def test_transition_estimate_recovers_a_known_matrix():
    rng = np.random.default_rng(0)
    k = 5
    t = rng.uniform(0.0, 0.1, (k, k))
    np.fill_diagonal(t, 0.0)
    np.fill_diagonal(t, 1 - t.sum(1))  # diagonally dominant, row-stochastic
    # For each class, 50 examples whose softmax is exactly that row: the top of p_i is class i's
    # examples (T[j, i] < T[i, i]), so the 97th percentile picks one of them.
    probs = np.repeat(t, 50, axis=0)
    rng.shuffle(probs)
    np.testing.assert_allclose(losses.estimate_transition(probs), t, atol=1e-12)


def test_transition_estimate_is_row_stochastic_on_arbitrary_outputs():
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=300)
    est = losses.estimate_transition(probs)
    np.testing.assert_allclose(est.sum(1), 1.0)
    assert (est >= 0).all()
