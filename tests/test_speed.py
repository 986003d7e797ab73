"""The fast paths of the loop give the plain loop's numbers: a compiled training step (dynamo's
eager backend, so no C++ compilation), the fused Adam update; and benchmarks/speed.py runs."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import load_benchmark
from limitlab.config import Config
from limitlab.data.run import prepare_data
from limitlab.train import build_run_objective, make_optimizer, train_one_epoch



@pytest.fixture(scope="module")
def digits():
    config = Config(dataset="digits", noise="uniform:0.4", train_size=200)
    return config, prepare_data(config, torch.device("cpu"))


def _epochs(config, data, step_wrapper=None, **adam):
    torch.manual_seed(0)
    objective, _ = build_run_objective(config, data)
    optimizer = (torch.optim.Adam(objective.parameters(), lr=config.lr, **adam) if adam
                 else make_optimizer(objective, config, torch.device("cpu")))
    step = step_wrapper(objective) if step_wrapper else None
    g = torch.Generator().manual_seed(0)
    return [train_one_epoch(objective, optimizer, data, batch_size=64, generator=g, step=step) for _ in range(2)]


@pytest.mark.parametrize("method", ["ce", "limit-l"])
def test_a_compiled_step_trains_like_the_plain_one(digits, method):
    import torch._dynamo

    config, data = digits
    config = Config(**{**config.to_dict(), "method": method})
    plain = _epochs(config, data)
    compiled = _epochs(config, data, lambda objective: torch.compile(objective, backend="eager"))
    torch._dynamo.reset()
    assert compiled[0].keys() == plain[0].keys()
    for a, b in zip(compiled, plain):
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5), k


def test_fused_adam_matches_the_per_tensor_loop(digits):
    config, data = digits
    fused = _epochs(Config(**{**config.to_dict(), "method": "limit-l"}), data)
    loop = _epochs(Config(**{**config.to_dict(), "method": "limit-l"}), data, foreach=False)
    for a, b in zip(fused, loop):
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4), k


def test_speed_benchmark_runs_and_writes_its_figures(tmp_path, data_root):
    speed = load_benchmark("speed")
    out = tmp_path / "speed.json"
    before = torch.get_num_threads()
    try:
        speed.main(["--threads", "1", "--data-dir", str(data_root), "--train-size", "64", "--val-fraction", "0.004",
                    "--epochs", "3", "--repeats", "1", "--eval-batch-sizes", "128", "--json", str(out)])
    finally:
        torch.set_num_threads(before)
    r = json.loads(out.read_text())
    assert r["matmul_gflops"] > 0
    assert r["step"]["limit-l"]["flops_per_image"] == pytest.approx(2 * r["step"]["ce"]["flops_per_image"], rel=0.05)
    # cnn4 by hand, 2 FLOPs per multiply-add: output positions × output channels × inputs per output
    convs = [14 * 14 * 32 * (1 * 4 * 4), 7 * 7 * 32 * (32 * 4 * 4), 3 * 3 * 64 * (32 * 3 * 3), 256 * (64 * 3 * 3)]
    assert r["eval"]["cnn4"]["flops_per_image"] == 2 * (sum(convs) + 256 * 128 + 128 * 10)
    # training: forward + the two backward products (the first conv needs no input gradient), two networks for LIMIT
    assert r["step"]["ce"]["flops_per_image"] == 3 * r["eval"]["cnn4"]["flops_per_image"] - 2 * convs[0]
    assert r["protocol"]["limit-l"]["epochs"] == 3 and r["plain"]["speedup"] > 0


def test_speed_choices_benchmark_runs(data_root):
    choices = load_benchmark("speed_choices")
    before = torch.get_num_threads()
    try:
        r = choices.main(["--threads", "1", "--data-dir", str(data_root), "--train-size", "64", "--repeats", "1"])
    finally:
        torch.set_num_threads(before)
    assert set(r["layout_epoch_s"]) == {"ce", "limit-l"}
    assert set(r["adam_step_s"]) == {"fused", "foreach", "per-tensor"}
    assert all(v > 0 for v in r["last_conv_fwd_bwd_s"].values())
