"""The baseline losses' ``reduction=`` and their nn.Module forms, against per-example formulas
written out here with NumPy."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from limitlab import losses

B, K = 6, 4
T = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.8, 0.1, 0.0], [0.3, 0.0, 0.6, 0.1], [0.0, 0.1, 0.2, 0.7]])


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, K, generator=g, dtype=torch.float64) * 2, torch.randint(0, K, (B,), generator=g)


def _softmax(f):
    e = np.exp(f - f.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _per_example(name, f, y):
    """Each loss per example, from its definition."""
    s = _softmax(f.numpy())
    y = y.numpy()
    rows = range(len(y))
    if name == "mae":    # ‖e_y − s(f)‖₁, summed over classes
        return np.array([sum(abs((c == y[n]) - s[n, c]) for c in range(K)) for n in rows])
    if name == "gce":    # (1 − s(f)_y^q)/q with q = 0.5
        return np.array([(1 - s[n, y[n]] ** 0.5) / 0.5 for n in rows])
    if name == "fw":     # −log Σ_i s(f)_i T[i, y]
        return np.array([-np.log(sum(s[n, i] * T[i, y[n]] for i in range(K))) for n in rows])
    raise AssertionError(name)


FUNCTIONS = {
    "mae": (lambda f, y, **kw: losses.mae_loss(f, y, **kw), lambda **kw: losses.MAELoss(**kw)),
    "gce": (lambda f, y, **kw: losses.gce_loss(f, y, 0.5, **kw), lambda **kw: losses.GCELoss(0.5, **kw)),
    "fw": (lambda f, y, **kw: losses.forward_corrected_loss(f, y, torch.tensor(T), **kw),
           lambda **kw: losses.ForwardCorrectedLoss(T, **kw)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_functions_and_modules_reduce_the_per_example_losses(name, reduction):
    f, y = _batch()
    expected = _per_example(name, f, y)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    function, module = FUNCTIONS[name]
    got_f = function(f, y, reduction=reduction)
    got_m = module(reduction=reduction)(f, y)
    assert got_f.shape == (B,) if reduction == "none" else got_f.ndim == 0
    np.testing.assert_allclose(got_f.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(got_m.numpy(), expected, rtol=1e-10)


# The expressions of the functions before they had ``reduction``: the default must not change a bit.
BEFORE = {
    "mae": lambda f, y: (F.one_hot(y, K).to(f.dtype) - f.softmax(1)).abs().sum(1).mean(),
    "gce": lambda f, y: ((1 - f.softmax(1).gather(1, y[:, None]).squeeze(1).clamp_min(1e-12).pow(0.5)) / 0.5).mean(),
    "fw": lambda f, y: F.nll_loss((f.softmax(1) @ torch.tensor(T).to(f.dtype)).clamp_min(1e-12).log(), y),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_default_reduction_is_the_mean_bit_for_bit(name):
    f, y = _batch(1)
    f = f.float()  # float32, where a different order of operations would show
    function, module = FUNCTIONS[name]
    if name == "fw":
        function = lambda f, y, **kw: losses.forward_corrected_loss(f, y, torch.tensor(T, dtype=torch.float32), **kw)  # noqa: E731
        module = lambda **kw: losses.ForwardCorrectedLoss(torch.tensor(T, dtype=torch.float32), **kw)  # noqa: E731
    assert torch.equal(function(f, y), BEFORE[name](f, y))
    assert torch.equal(function(f, y, reduction="mean"), BEFORE[name](f, y))
    assert torch.equal(module()(f, y), BEFORE[name](f, y))


def test_dmi_module_is_the_batch_value():
    f, y = _batch(2)
    p = _softmax(f.numpy())
    e = np.eye(K)[y.numpy()]
    expected = -np.log(abs(np.linalg.det(e.T @ p)) + 1e-3)
    for reduction in ("mean", "sum"):
        assert losses.DMILoss(reduction=reduction)(f, y).item() == pytest.approx(expected, rel=1e-10)
        assert losses.dmi_loss(f, y, reduction=reduction).item() == pytest.approx(expected, rel=1e-10)


def test_dmi_refuses_per_example_losses():
    f, y = _batch()
    with pytest.raises(ValueError, match="one value per batch"):
        losses.DMILoss(reduction="none")
    with pytest.raises(ValueError, match="one value per batch"):
        losses.dmi_loss(f, y, reduction="none")


@pytest.mark.parametrize("make", [lambda: losses.MAELoss(reduction="avg"), lambda: losses.GCELoss(reduction="avg"),
                                  lambda: losses.ForwardCorrectedLoss(T, reduction="avg"),
                                  lambda: losses.DMILoss(reduction="avg")])
def test_unknown_reduction_is_refused_by_modules(make):
    with pytest.raises(ValueError, match="reduction must be one of mean, sum, none"):
        make()


def test_unknown_reduction_is_refused_by_functions():
    f, y = _batch()
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.mae_loss(f, y, reduction="avg")


def test_gce_module_refuses_q_outside_its_range():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        losses.GCELoss(q=0.0)


def test_forward_corrected_module_refuses_a_non_square_matrix():
    with pytest.raises(ValueError, match="K×K"):
        losses.ForwardCorrectedLoss(np.ones((3, 4)) / 4)


def test_forward_corrected_module_keeps_t_as_a_buffer():
    module = losses.ForwardCorrectedLoss(T)
    assert "transition" in dict(module.named_buffers())
    assert list(module.parameters()) == []


def test_modules_backpropagate_like_the_functions():
    f, y = _batch(3)
    a, b = f.clone().requires_grad_(True), f.clone().requires_grad_(True)
    losses.GCELoss(0.7, reduction="sum")(a, y).backward()
    losses.gce_loss(b, y, 0.7, reduction="none").sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
