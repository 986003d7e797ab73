"""CPU speed of the paper protocol against this machine's own limit (the roofline), in one run.

Sections, all on the same threads (``--threads``, default: torch's), MNIST (``$LIMITLAB_DATA`` or
``--data-dir``), the paper's CNN (cnn4), batch 256:

  roofline   the measured rate of a 1024×1024 fp32 matrix product: the ceiling for this work here;
  step       limitlab's training epoch (``train_one_epoch``, n training images) for CE and LIMIT_L,
             as achieved GFLOP/s (FLOPs counted by torch.utils.flop_counter on one batch) and % of
             the matmul rate;
  eval       the evaluation pass over the 12,000 validation images (``predict`` on the
             BatchNorm-folded copy, inference mode), its rate by evaluation batch size for cnn4
             and mlp, and the unfolded network for comparison;
  plain      limitlab's CE epoch against a minimal plain-PyTorch CE loop written here (a ratio);
  protocol   end-to-end epochs of ``limitlab.train.train`` under the paper protocol (n training
             images, 12k validation every epoch, the test pass only at a new best validation epoch
             and the last one; checkpoints written): seconds per epoch without a test pass, the
             test pass's cost, and the epoch's achieved rate against the roofline.

Every figure is the best of ``--repeats`` (after a warm-up), as on a shared machine the minimum is
the figure least disturbed by other processes. Prints a table and writes JSON (``--json``).

    python benchmarks/speed.py --threads 2 --json benchmarks/results/speed.json
    python benchmarks/speed.py --threads 1 --epochs 6        # shorter protocol section
    mkdir /tmp/before && git archive 1f4996c | tar -x -C /tmp/before   # limitlab before the speed work
    python benchmarks/speed.py --threads 2 --baseline /tmp/before        # ... and the same protocol with it

The GPU counterpart (ResNet-34 fp32/bf16/compile, DDP, several runs per GPU) is
``benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from limitlab.config import Config
from limitlab.data import load_dataset
from limitlab.data.run import prepare_data
from limitlab.models import build_model, fuse_for_eval
from limitlab.train import build_run_objective, make_optimizer, predict, train, train_one_epoch

# The reference implementation's epoch (training + validation, MNIST n=1000, LIMIT_L) measured on
# this project's 2-core machine with 2 threads, quoted (not re-measured here); and the targets.
REFERENCE_EPOCH_SECONDS = 2.52
TARGETS = {"protocol_limit_epoch_s": 0.6, "protocol_roofline": 0.60, "eval_roofline": 0.70, "step_roofline": 0.50}


def best_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_gflops(repeats: int, size: int = 1024) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    inner = 20
    t = best_time(lambda: [a @ b for _ in range(inner)], repeats, warmup=2) / inner
    return 2 * size ** 3 / t / 1e9


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def run_config(args, method: str, **overrides) -> Config:
    return Config(dataset="mnist", data_dir=args.data_dir, noise=args.noise, train_size=args.train_size,
                  val_fraction=args.val_fraction, method=method, beta=10.0, seed=args.seed, **overrides)


# ------------------------------------------------------------------------------------------- sections
def step_and_eval_section(args, data) -> dict:
    """Training-epoch and evaluation-pass rates of limitlab's loop pieces."""
    device = torch.device("cpu")
    out = {"step": {}, "eval": {}}
    x = data.to_input(data.train.images[:args.batch_size])
    y = data.train.labels[:args.batch_size]
    for method in ("ce", "limit-l"):
        config = run_config(args, method)
        torch.manual_seed(args.seed)
        objective, _ = build_run_objective(config, data)
        optimizer = make_optimizer(objective, config, device)

        def fwd_bwd():
            loss, _ = objective(x, y)
            loss.backward()

        per_image = flops(fwd_bwd) / len(x)
        optimizer.zero_grad(set_to_none=True)
        g = torch.Generator().manual_seed(args.seed)
        t = best_time(lambda: train_one_epoch(objective, optimizer, data, batch_size=args.batch_size, generator=g),
                      args.repeats)
        rate = per_image * len(data.train) / t / 1e9
        out["step"][method] = {"flops_per_image": per_image, "epoch_s": t, "images_per_s": len(data.train) / t,
                               "gflops": rate}

    n_val = len(data.val)
    for model_name in ("cnn4", "mlp"):
        torch.manual_seed(args.seed)
        model = build_model(model_name, data.input_shape, 10).to(memory_format=torch.channels_last)
        fused = fuse_for_eval(model)
        per_image = flops(lambda: fused(x)) / len(x)
        rows = {}
        for bs in args.eval_batch_sizes:
            t = best_time(lambda: predict(fused, data, data.val, batch_size=bs), args.repeats)
            rows[bs] = {"pass_s": t, "gflops": per_image * n_val / t / 1e9}
        default_bs = Config().eval_batch_size
        t = best_time(lambda: predict(model.eval(), data, data.val, batch_size=default_bs), args.repeats)
        out["eval"][model_name] = {
            "flops_per_image": per_image, "images": n_val, "by_batch_size": rows,
            "unfused_at_default_batch_size": {"batch_size": default_bs, "pass_s": t,
                                              "gflops": per_image * n_val / t / 1e9},
        }
    return out


def plain_ce_epoch(model, optimizer, images, labels, mean, std, batch_size, generator):
    """The reference: what a careful user writes by hand (uint8 tensor, index slices, Adam)."""
    model.train()
    order = torch.randperm(len(labels), generator=generator)
    for start in range(0, len(labels), batch_size):
        idx = order[start:start + batch_size]
        x = (images[idx].float() / 255 - mean) / std
        loss = F.cross_entropy(model(x), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def plain_section(args, data) -> dict:
    images, labels = data.train.images, data.train.labels
    mnist = load_dataset("mnist", args.data_dir, download=False)
    mean, std = torch.tensor(mnist.mean).view(-1, 1, 1), torch.tensor(mnist.std).view(-1, 1, 1)
    torch.manual_seed(args.seed)
    plain = build_model("cnn4", data.input_shape, 10)
    plain_opt = torch.optim.Adam(plain.parameters(), 1e-3)
    config = run_config(args, "ce")
    objective, _ = build_run_objective(config, data)
    optimizer = make_optimizer(objective, config, torch.device("cpu"))
    g = torch.Generator().manual_seed(args.seed)
    runs = {"plain": lambda: plain_ce_epoch(plain, plain_opt, images, labels, mean, std, args.batch_size, g),
            "limitlab": lambda: train_one_epoch(objective, optimizer, data, batch_size=args.batch_size, generator=g)}
    times = {name: [] for name in runs}
    for rep in range(args.repeats + 1):  # interleaved; the first epoch of each is warm-up
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            if rep:
                times[name].append(time.perf_counter() - t0)
    best = {name: min(ts) for name, ts in times.items()}
    return {"plain_ce_epoch_s": best["plain"], "limitlab_ce_epoch_s": best["limitlab"],
            "speedup": best["plain"] / best["limitlab"]}


def protocol_section(args, train_flops: dict, eval_flops: float) -> dict:
    """Whole epochs of the real loop, timed between the ends of consecutive epochs (files included)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ce", "limit-l"):
            config = run_config(args, method, epochs=args.epochs, patience=None)
            stamps, rows = [], []

            def on_epoch_end(row):
                stamps.append(time.perf_counter())
                rows.append(row)

            start = time.perf_counter()
            summary = train(config, Path(tmp) / method, progress=False, on_epoch_end=on_epoch_end)
            walls = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
            # epoch 1 is warm-up (allocations, first touches); the last epoch always tests
            plain = [w for w, r in zip(walls[1:-1], rows[1:-1]) if r["test_accuracy"] is None]
            tested = [w for w, r in zip(walls[1:], rows[1:]) if r["test_accuracy"] is not None]
            n_train, n_val, n_test = summary["train_size"], round(60000 * args.val_fraction), 10000
            epoch_flops = train_flops[method] * n_train + eval_flops * (n_train + n_val)
            epoch_s = min(plain) if plain else float("nan")
            test_s = (min(tested) - epoch_s) if plain and tested else float("nan")
            out[method] = {
                "epochs": len(rows), "epochs_with_test": sum(r["test_accuracy"] is not None for r in rows),
                "epoch_s": epoch_s, "epoch_median_s": statistics.median(plain) if plain else float("nan"),
                "test_pass_s": test_s, "mean_epoch_s_incl_tests": statistics.mean(walls[1:]),
                "train_s": min(r["train_seconds"] for r in rows[1:]),
                "epoch_gflop": epoch_flops / 1e9, "gflops": epoch_flops / epoch_s / 1e9,
                "test_accuracy": summary["test_accuracy"], "best_epoch": summary["best_epoch"],
                "test_pass_gflops": eval_flops * n_test / test_s / 1e9 if test_s == test_s else None,
            }
    out["limit_over_ce"] = out["limit-l"]["epoch_s"] / out["ce"]["epoch_s"]
    out["speedup_over_reference"] = REFERENCE_EPOCH_SECONDS / out["limit-l"]["epoch_s"]
    return out


# The same protocol runs under another limitlab (a checkout of an earlier version, with its own
# defaults), in a child process: ``train(config, out, progress, on_epoch_end)`` and these config
# fields exist in every version.
BASELINE_SCRIPT = r"""
import json, sys, tempfile, time, torch
from limitlab.config import Config
from limitlab.train import train
torch.set_num_threads(int(sys.argv[1]))
fields = json.loads(sys.argv[2])
out = {}
for method in ("ce", "limit-l"):
    stamps, tested = [], []
    def on_epoch_end(row):
        stamps.append(time.perf_counter())
        tested.append(row.get("test_accuracy") is not None)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(Config(**fields, method=method), tmp + "/run", progress=False, on_epoch_end=on_epoch_end)
    out[method] = {"walls": [b - a for a, b in zip([start] + stamps[:-1], stamps)], "tested": tested}
print(json.dumps(out))
"""


def baseline_section(args, ours: dict) -> dict:
    """Protocol epochs of the limitlab at ``args.baseline`` (its defaults), against ours, in one run."""
    fields = {k: v for k, v in run_config(args, "ce", epochs=args.epochs, patience=None).to_dict().items()
              if k in ("dataset", "data_dir", "noise", "train_size", "val_fraction", "beta", "seed", "epochs",
                       "patience")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path(args.baseline).resolve()),
                                                                    os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, "-c", BASELINE_SCRIPT, str(args.threads), json.dumps(fields)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    out = {"checkout": str(args.baseline)}
    for method, r in runs.items():
        walls = r["walls"][1:]  # epoch 1 is warm-up
        out[method] = {"epoch_min_s": min(walls), "mean_epoch_s": statistics.mean(walls),
                       "epochs_with_test": sum(r["tested"]), "epochs": len(r["tested"]),
                       "speedup_mean_epoch": statistics.mean(walls) / ours[method]["mean_epoch_s_incl_tests"],
                       "speedup_epoch_without_test": min(walls) / ours[method]["epoch_s"]}
    return out


# ------------------------------------------------------------------------------------------- report
def add_ratios(r: dict) -> None:
    """Every rate as a share of the roofline: the better of the matmul rates measured before and
    after the other sections (a drop between them means other processes took the CPU meanwhile)."""
    m = r["roofline_gflops"] = max(r["matmul_gflops"], r["matmul_gflops_after"])

    def walk(d):
        for v in d.values():
            if isinstance(v, dict):
                if "gflops" in v:
                    v["of_matmul"] = v["gflops"] / m
                walk(v)
    walk(r)


def print_report(r: dict) -> None:
    m = r["roofline_gflops"]
    print(f"\n{r['threads']} thread(s), torch {r['torch']}, {r['cpu']}, load before: {r['load_before']}, "
          f"best of {r['repeats']}")
    print(f"roofline: 1024² fp32 matmul {m:.1f} GFLOP/s (the better of {r['matmul_gflops']:.1f} before and "
          f"{r['matmul_gflops_after']:.1f} after the other sections)\n")
    print("| pass | FLOP/image | seconds | GFLOP/s | % of matmul | target |")
    print("|---|---|---|---|---|---|")
    for method, s in r["step"].items():
        print(f"| training epoch, {method} (n={r['train_size']}) | {s['flops_per_image'] / 1e6:.2f} M | "
              f"{s['epoch_s']:.3f} | {s['gflops']:.1f} | {100 * s['of_matmul']:.0f}% | ≥ 50% |")
    for name, e in r["eval"].items():
        bs, best = max(e["by_batch_size"].items(), key=lambda kv: kv[1]["gflops"])
        d = Config().eval_batch_size
        at_default = e["by_batch_size"].get(d, e["by_batch_size"].get(str(d)))
        if at_default:
            print(f"| eval pass {name}, {e['images']} images, batch {d} (default) | {e['flops_per_image'] / 1e6:.2f} M | "
                  f"{at_default['pass_s']:.3f} | {at_default['gflops']:.1f} | {100 * at_default['gflops'] / m:.0f}% | "
                  f"{'≥ 70%' if name == 'cnn4' else ''} |")
        print(f"| eval pass {name}, best batch {bs} | | {best['pass_s']:.3f} | {best['gflops']:.1f} | "
              f"{100 * best['gflops'] / m:.0f}% | |")
        u = e["unfused_at_default_batch_size"]
        print(f"| eval pass {name}, BatchNorm not folded, batch {u['batch_size']} | | {u['pass_s']:.3f} | "
              f"{u['gflops']:.1f} | {100 * u['gflops'] / m:.0f}% | |")
    print("\neval pass seconds by batch size: " + "; ".join(
        f"{name}: " + ", ".join(f"{bs} {v['pass_s']:.3f}" for bs, v in e["by_batch_size"].items())
        for name, e in r["eval"].items()))
    if "plain" in r:
        p = r["plain"]
        print(f"\nCE epoch: plain PyTorch loop {p['plain_ce_epoch_s']:.3f} s, limitlab {p['limitlab_ce_epoch_s']:.3f} s "
              f"({p['speedup']:.2f}× faster)")
    if "protocol" in r:
        p = r["protocol"]
        print(f"\npaper-protocol epoch (train n={r['train_size']}, training-set pass, {round(60000 * r['val_fraction'])} "
              f"validation, checkpoints; test pass only at a new best and the last epoch), {p['ce']['epochs']} epochs:\n")
        print("| method | epoch s (no test) | median | test pass s | epochs with a test | mean epoch s incl. tests | "
              "GFLOP/epoch | GFLOP/s | % of matmul |")
        print("|---|---|---|---|---|---|---|---|---|")
        for method in ("ce", "limit-l"):
            q = p[method]
            print(f"| {method} | {q['epoch_s']:.3f} | {q['epoch_median_s']:.3f} | {q['test_pass_s']:.3f} | "
                  f"{q['epochs_with_test']}/{q['epochs']} | "
                  f"{q['mean_epoch_s_incl_tests']:.3f} | {q['epoch_gflop']:.1f} | {q['gflops']:.1f} | "
                  f"{100 * q['of_matmul']:.0f}% |")
        lim = p["limit-l"]
        print(f"\nLIMIT epoch {lim['epoch_s']:.3f} s (target ≤ {TARGETS['protocol_limit_epoch_s']} s with 2 threads); "
              f"{p['speedup_over_reference']:.1f}× the reference implementation's {REFERENCE_EPOCH_SECONDS} s "
              f"(quoted, target ≥ 4×); {100 * lim['of_matmul']:.0f}% of the matmul roofline (target ≥ 60%); "
              f"LIMIT/CE epoch {p['limit_over_ce']:.2f}")
    b = r.get("baseline")
    if b and "error" in b:
        print(f"\nbaseline {r.get('baseline_checkout', '')}: FAILED: {b['error']}")
    elif b:
        print(f"\nthe same protocol with the limitlab in {b['checkout']} (its defaults), in this run:\n")
        print("| method | its epoch s (min) | its mean epoch s | its epochs with a test | speed-up, epoch without "
              "test | speed-up, mean epoch |")
        print("|---|---|---|---|---|---|")
        for method in ("ce", "limit-l"):
            q = b[method]
            print(f"| {method} | {q['epoch_min_s']:.3f} | {q['mean_epoch_s']:.3f} | {q['epochs_with_test']}/{q['epochs']} | "
                  f"{q['speedup_epoch_without_test']:.2f}× | {q['speedup_mean_epoch']:.2f}× |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ (else $LIMITLAB_DATA)")
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--val-fraction", type=float, default=0.2, help="0.2: the protocol's 12,000 validation images")
    ap.add_argument("--noise", default="uniform:0.8")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--eval-batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[256, 512, 1024, 2048])
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions per figure (the best is reported)")
    ap.add_argument("--epochs", type=int, default=12, help="epochs of each protocol run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["plain", "protocol"], help="sections to leave out")
    ap.add_argument("--baseline", default=None, metavar="DIR",
                    help="also run the protocol epochs with the limitlab in DIR (a checkout of an earlier version, "
                         "e.g. from `git worktree add` or `git archive`), under its own defaults")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    result = {"threads": args.threads, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "load_before": " ".join(f"{v:.2f}" for v in os.getloadavg()), "repeats": args.repeats,
              "train_size": args.train_size, "val_fraction": args.val_fraction, "batch_size": args.batch_size}
    result["matmul_gflops"] = matmul_gflops(args.repeats)
    data = prepare_data(run_config(args, "ce"), torch.device("cpu"))
    result.update(step_and_eval_section(args, data))
    if "plain" not in args.skip:
        result["plain"] = plain_section(args, data)
    if "protocol" not in args.skip:
        train_flops = {m: s["flops_per_image"] for m, s in result["step"].items()}
        result["protocol"] = protocol_section(args, train_flops, result["eval"]["cnn4"]["flops_per_image"])
        if args.baseline:
            result["baseline"] = baseline_section(args, result["protocol"])
    result["matmul_gflops_after"] = matmul_gflops(args.repeats)
    result["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    add_ratios(result)
    print_report(result)
    print(f"\nload after: {result['load_after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures: {args.json}")
    return result


if __name__ == "__main__":
    main()
