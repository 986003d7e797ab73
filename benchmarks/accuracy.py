"""MNIST accuracy under the paper protocol (docs/method.md §5, §7): ce / limit-g / limit-l over noise rates,
seeds and a β grid; β chosen per (noise, method) by mean noisy-validation accuracy over seeds.

Each run is a `limitlab train` subprocess with its own run directory under --out; finished runs
are skipped and interrupted ones resumed, so the script can be re-run after a stop. Prints a
markdown table (mean ± std over seeds of the test accuracy at the best-validation epoch and of the
final training accuracy on the noisy labels) and writes it to OUT/table.md.

    python benchmarks/accuracy.py --out benchmarks/out/mnist1000 --jobs 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_name(method, p, beta, seed):
    return f"{method}_p{p}" + (f"_beta{beta}" if beta is not None else "") + f"_seed{seed}"


def launch(args, method, p, beta, seed, threads):
    out = Path(args.out) / run_name(method, p, beta, seed)
    if (out / "summary.json").exists():
        return out
    cmd = [sys.executable, "-m", "limitlab", "train", "--dataset", args.dataset, "--noise", f"uniform:{p}",
           "--method", method, "--seed", str(seed), "--epochs", str(args.epochs), "--patience", str(args.patience),
           "--test-every", str(args.test_every), "--out", str(out), "--quiet"]
    if args.train_size:
        cmd += ["--train-size", str(args.train_size)]
    if beta is not None:
        cmd += ["--beta", str(beta)]
    if (out / "config.json").exists():
        cmd = [c for c in cmd[:4]] + ["--out", str(out), "--resume", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.time()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAILED {out}: {result.stderr.strip()}", file=sys.stderr)
    else:
        print(f"done {out.name} in {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    return out


def mean_std(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def table(args) -> str:
    rows = ["| noise p | method | β (selected) | test acc (best val) | final train acc on noisy labels | best epoch | runs |",
            "|---|---|---|---|---|---|---|"]
    for p, method in itertools.product(args.noise_rates, args.methods):
        betas = [None] if method == "ce" else args.betas
        candidates = []
        for beta in betas:
            sums = [Path(args.out) / run_name(method, p, beta, s) / "summary.json" for s in args.seeds]
            sums = [json.loads(f.read_text()) for f in sums if f.exists()]
            if sums:
                candidates.append((statistics.mean(s["best_val_accuracy"] for s in sums), beta, sums))
        if not candidates:
            continue
        _, beta, sums = max(candidates, key=lambda c: c[0])  # selection on noisy validation only
        te, tr = mean_std([s["test_accuracy"] for s in sums]), mean_std([s["final_train_noisy_accuracy"] for s in sums])
        epochs = ", ".join(str(s["best_epoch"]) for s in sums)
        rows.append(f"| {p} | {method} | {'-' if beta is None else beta} | {te[0]:.3f} ± {te[1]:.3f} | "
                    f"{tr[0]:.3f} ± {tr[1]:.3f} | {epochs} | {len(sums)} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--noise-rates", type=float, nargs="+", default=[0.5, 0.8, 0.89])
    ap.add_argument("--methods", nargs="+", default=["ce", "limit-g", "limit-l"])
    ap.add_argument("--betas", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--patience", type=int, default=100)
    ap.add_argument("--test-every", type=int, default=10, help="test pass every k epochs (always at a new best)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time; CPU threads are split between them")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: cores / jobs)")
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    if not args.table_only:
        jobs = [(m, p, b, s) for s in args.seeds for p in args.noise_rates for m in args.methods
                for b in ([None] if m == "ce" else args.betas)]
        threads = args.threads or max(1, (os.cpu_count() or 2) // args.jobs)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda j: launch(args, *j, threads), jobs))
    text = table(args)
    print(text)
    Path(args.out, "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
