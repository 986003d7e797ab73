"""The measurements behind the loop's speed choices on CPU (cnn4, MNIST n=1000, batch 256), each
against its alternative in the same process, interleaved, best of ``--repeats``:

  layout    channels_last vs contiguous (NCHW) for the training epoch (CE and LIMIT_L);
  adam      one fused Adam update vs the foreach and the per-tensor implementations, on the
            parameters of LIMIT's two networks;
  lastconv  cnn4's last convolution (3×3 input, 1×1 output) as ``nn.Conv2d`` vs as the matrix
            product (``models.WholeInputConv2d``), forward + backward;
  compile   torch.compile on CPU: the compilation time, and the training epoch and evaluation pass
            compiled vs eager (optional, ``--compile``: about a minute);
  loss      ``limit_loss`` forward + backward alone on a [256, 10] batch (the non-network part of a step);
  profile   where a LIMIT_L training epoch and an evaluation pass spend their time, by kind of
            operation (torch.profiler; optional, ``--profile``).

With one thread the figures are CPU time of this process (``time.process_time``), which other
processes on the machine disturb much less than wall time; with more threads, wall time.

    python benchmarks/speed_choices.py --threads 1
    python benchmarks/speed_choices.py --threads 1 --compile
    python benchmarks/speed_choices.py --threads 2 --profile
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from limitlab.config import Config
from limitlab.data.run import prepare_data
from limitlab.models import WholeInputConv2d, fuse_for_eval
from limitlab.train import build_run_objective, make_optimizer, predict, train_one_epoch


def interleaved(fns: dict, repeats: int, clock) -> dict[str, float]:
    """Best time of each function, run in turn ``repeats`` times after one warm-up call each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return {name: min(ts) for name, ts in times.items()}


def objective_for(config, data, memory_format=torch.channels_last, **adam):
    torch.manual_seed(0)
    objective, _ = build_run_objective(config, data)
    objective = objective.to(memory_format=memory_format)
    optimizer = (torch.optim.Adam(objective.parameters(), lr=config.lr, **adam) if adam
                 else make_optimizer(objective, config, torch.device("cpu")))
    return objective, optimizer


def layout(args, data, clock) -> dict:
    out = {}
    for method in ("ce", "limit-l"):
        config = Config(dataset="mnist", train_size=args.train_size, method=method)
        cl, cl_opt = objective_for(config, data)
        plain, plain_opt = objective_for(config, data, torch.contiguous_format)
        g = torch.Generator().manual_seed(0)
        cl_input = data.to_input
        nchw_input = lambda im: im.float().mul_(data.scale).sub_(data.shift)  # noqa: E731

        def epoch(objective, optimizer, to_input):
            data.to_input = to_input
            train_one_epoch(objective, optimizer, data, batch_size=256, generator=g)

        out[method] = interleaved({"channels_last": lambda: epoch(cl, cl_opt, cl_input),
                                   "contiguous": lambda: epoch(plain, plain_opt, nchw_input)}, args.repeats, clock)
        data.to_input = cl_input
    return out


def adam(args, data, clock) -> dict:
    config = Config(dataset="mnist", train_size=args.train_size, method="limit-l")
    steps = {}
    for name, kw in (("fused", {"fused": True}), ("foreach", {"foreach": True}), ("per-tensor", {"foreach": False})):
        objective, optimizer = objective_for(config, data, **kw)
        for p in objective.parameters():
            p.grad = torch.randn_like(p)
        steps[name] = lambda o=optimizer: [o.step() for _ in range(20)]
    best = interleaved(steps, args.repeats, clock)
    return {name: t / 20 for name, t in best.items()}


def lastconv(args, clock) -> dict:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 256, 3, 1, 0, bias=False).to(memory_format=torch.channels_last)
    matmul = WholeInputConv2d(64, 256, 3, 1, 0, bias=False).to(memory_format=torch.channels_last)
    matmul.load_state_dict(conv.state_dict())
    x = torch.randn(256, 64, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(256, 256, 1, 1)

    def fwd_bwd(module):
        return lambda: [torch.autograd.backward(module(x), grad) for _ in range(10)]

    best = interleaved({"conv2d": fwd_bwd(conv), "matrix product": fwd_bwd(matmul)}, args.repeats, clock)
    return {name: t / 10 for name, t in best.items()}


def compiled(args, data, clock) -> dict:
    config = Config(dataset="mnist", train_size=args.train_size, method="limit-l")
    objective, optimizer = objective_for(config, data)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    step = torch.compile(objective)
    for _ in range(2):  # the full batches and the smaller last one: two compilations
        train_one_epoch(objective, optimizer, data, batch_size=256, generator=g, step=step)
    compile_train = time.perf_counter() - t0
    train = interleaved({
        "compiled": lambda: train_one_epoch(objective, optimizer, data, batch_size=256, generator=g, step=step),
        "eager": lambda: train_one_epoch(objective, optimizer, data, batch_size=256, generator=g)},
        args.repeats, clock)
    fused = fuse_for_eval(objective.classifier)
    t0 = time.perf_counter()
    compiled_eval = torch.compile(fused)
    for _ in range(2):
        predict(compiled_eval, data, data.val, batch_size=Config().eval_batch_size)
    compile_eval = time.perf_counter() - t0
    evaluation = interleaved({
        "compiled": lambda: predict(compiled_eval, data, data.val, batch_size=Config().eval_batch_size),
        "eager": lambda: predict(fused, data, data.val, batch_size=Config().eval_batch_size)}, args.repeats, clock)
    return {"compile_and_two_training_epochs_s": compile_train, "training_epoch_s": train,
            "compile_and_two_eval_passes_s": compile_eval, "eval_pass_12k_s": evaluation}


def loss_only(args, clock) -> float:
    from limitlab.limit import limit_loss

    g = torch.Generator().manual_seed(0)
    f = torch.randn(256, 10, generator=g).requires_grad_()
    q = torch.randn(256, 10, generator=g).requires_grad_()
    y = torch.randint(0, 10, (256,), generator=g)

    def steps():
        for _ in range(100):
            limit_loss(f, q, y, q_dist="laplace", beta=10.0).backward()

    return interleaved({"loss": steps}, args.repeats, clock)["loss"] / 100


def _kind(name: str) -> str:
    n = name.lower()
    if "convolution_backward" in n:
        return "conv backward"
    if "convolution" in n:
        return "conv forward"
    if n in ("aten::mm", "aten::addmm"):
        return "matrix products"
    if "batch_norm" in n:
        return "BatchNorm"
    if "threshold_backward" in n or "relu" in n or "clamp_min" in n:
        return "ReLU"
    if "adam" in n:
        return "Adam"
    return "other"


def profile(args, data) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    config = Config(dataset="mnist", train_size=args.train_size, method="limit-l")
    objective, optimizer = objective_for(config, data)
    g = torch.Generator().manual_seed(0)
    fused = fuse_for_eval(objective.classifier)
    runs = {"training epoch (LIMIT_L)": lambda: train_one_epoch(objective, optimizer, data, batch_size=256, generator=g),
            "evaluation pass (12k)": lambda: predict(fused, data, data.val, batch_size=Config().eval_batch_size)}
    out = {}
    for name, fn in runs.items():
        fn()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                fn()
        shares: dict[str, float] = {}
        for e in prof.key_averages():
            shares[_kind(e.key)] = shares.get(_kind(e.key), 0.0) + e.self_cpu_time_total
        total = sum(shares.values())
        out[name] = {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--compile", action="store_true", help="also the torch.compile section")
    ap.add_argument("--profile", action="store_true", help="also the time shares by kind of operation")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    data = prepare_data(Config(dataset="mnist", data_dir=args.data_dir, train_size=args.train_size),
                        torch.device("cpu"))
    r = {"threads": args.threads, "clock": clock.__name__, "layout_epoch_s": layout(args, data, clock),
         "adam_step_s": adam(args, data, clock), "last_conv_fwd_bwd_s": lastconv(args, clock),
         "limit_loss_fwd_bwd_s": loss_only(args, clock)}
    if args.compile:
        r["compile"] = compiled(args, data, clock)
    if args.profile:
        r["time_shares"] = profile(args, data)
    print(json.dumps(r, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return r


if __name__ == "__main__":
    main()
