"""limitlab.onecycle: the estimator's Adam against torch.optim.Adam (+ OneCycleLR), step by step."""

import subprocess
import sys

import pytest
import torch

from limitlab.onecycle import Adam, one_cycle


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _train(net, optimizer, steps, after=None):
    torch.manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after:
            after()
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("total", [None, 20])
def test_same_weights_as_torch_adam(total):
    ours, ref = _net(), _net()
    torch_opt = torch.optim.Adam(ref.parameters(), lr=0.01, weight_decay=0.001)
    schedule = None if total is None else torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.01, total_steps=total)
    a = _train(ours, Adam(ours.parameters(), lr=0.01, weight_decay=0.001, total_steps=total), total or 20)
    b = _train(ref, torch_opt, total or 20, schedule and schedule.step)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_schedule_matches_onecycle_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.003)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.003, total_steps=37)
    for step in range(37):
        lr, beta1 = one_cycle(step, 37, 0.003)
        assert lr == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        assert beta1 == pytest.approx(opt.param_groups[0]["betas"][0], rel=1e-9)
        p.grad = torch.ones(1)
        opt.step()
        sched.step()


def test_no_dynamo_import():
    code = ("import sys, torch; from limitlab.onecycle import Adam; net = torch.nn.Linear(3, 2); "
            "opt = Adam(net.parameters(), lr=0.1, total_steps=5); net(torch.ones(4, 3)).sum().backward(); opt.step(); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
