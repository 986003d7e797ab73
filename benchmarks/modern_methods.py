"""The methods compared today (sce, nce-rce, elr, sop, coteaching, bootstrap, ls) beside LIMIT and CE,
on what this machine runs: test accuracy and label-issue F1.

Part ``mnist``: MNIST, ``--train-size`` 1000, uniform 0.8 and pair-flip 0.4 (training and validation
labels), the paper's 4-layer CNN, Adam 1e-3, batch 256, ``--epochs`` epochs without early stopping, a
noisy validation set of ``--val-fraction`` 0.05 of the official training set (3,000 images; the paper
holds out 0.2, which costs 4× the evaluation time);
the reported test accuracy is at the best noisy-validation epoch. Every method at its default
hyperparameters (no selection over its grid); ``coteaching-noise`` is Co-teaching with τ = the
known noise rate (``--coteaching-tau noise``, the paper's setting). Label-issue F1: the best
checkpoint's classifier flags a training example when its prediction differs from the given label,
scored against the corruption mask.

Part ``tabular``: ``find_label_issues``' estimator (:class:`limitlab.LimitClassifier`, its defaults:
100 epochs, patience 20 on a 20% noisy-validation split) on scikit-learn's digits (uniform and
pair-flip 0.4) and breast_cancer (uniform 0.4), a stratified 25% clean test split per seed, as in
benchmarks/tabular.py; F1 of ``label_issues_["is_label_issue"]`` against the corruption mask.

    OMP_NUM_THREADS=1 python benchmarks/modern_methods.py mnist --out benchmarks/out/modern --noise uniform:0.8
    OMP_NUM_THREADS=1 python benchmarks/modern_methods.py tabular --out benchmarks/out/modern --seeds 0 1
    python benchmarks/modern_methods.py table --out benchmarks/out/modern

Finished runs and cells are kept (re-running skips them); ``table`` prints the markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from limitlab import Config, LimitClassifier, metrics, noise
from limitlab.train import train

METHODS = ["ce", "limit-l", "sce", "nce-rce", "elr", "sop", "coteaching", "coteaching-noise", "bootstrap", "ls"]


def _config(method: str, spec: str, seed: int, args) -> Config:
    extra = {"coteaching_tau": None} if method == "coteaching-noise" else {}
    return Config(dataset="mnist", data_dir=args.data_dir, train_size=args.train_size, noise=spec,
                  method=method.removesuffix("-noise"), epochs=args.epochs, patience=None, seed=seed,
                  val_fraction=args.val_fraction, train_eval_every=0, device="cpu", **extra)


def mnist(args) -> None:
    from limitlab.analysis.detect import run_outputs

    for spec in args.noise:
        for seed in args.seeds:
            for method in args.methods:
                cell = Path(args.out) / "cells" / f"mnist_{spec.replace(':', '')}_{method}_seed{seed}.json"
                if cell.exists():
                    continue
                run = Path(args.out) / "runs" / f"{spec.replace(':', '')}_{method}_seed{seed}"
                t0 = time.perf_counter()
                summary = train(_config(method, spec, seed, args), run, overwrite=True, progress=False)
                outputs = run_outputs(run, device="cpu")
                flagged = outputs.probs_f.argmax(1) != outputs.labels
                row = {"part": "mnist", "noise": spec, "method": method, "seed": seed,
                       "test_accuracy": summary["test_accuracy"], "best_epoch": summary["best_epoch"],
                       "seconds": time.perf_counter() - t0,
                       **metrics.flagged_metrics(flagged, outputs.corrupted)}
                cell.parent.mkdir(parents=True, exist_ok=True)
                cell.write_text(json.dumps(row))
                print(json.dumps(row), flush=True)


def _tabular_data(name: str, seed: int):
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    x, y = (load_digits if name == "digits" else load_breast_cancer)(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.25, stratify=y, random_state=seed)


def tabular(args) -> None:
    for name, spec in (s.split("/") for s in args.tabular):
        for seed in args.seeds:
            x, x_test, y_true, y_test = _tabular_data(name, seed)
            y = noise.corrupt_labels(y_true, noise.parse_noise(spec, int(y_true.max()) + 1), seed)
            for method in [m for m in args.methods if m != "coteaching-noise"]:
                cell = Path(args.out) / "cells" / f"tabular_{name}_{spec.replace(':', '')}_{method}_seed{seed}.json"
                if cell.exists():
                    continue
                t0 = time.perf_counter()
                clf = LimitClassifier(method=method, random_state=seed).fit(x, y)
                flagged = clf.label_issues_["is_label_issue"].to_numpy()
                row = {"part": "tabular", "dataset": name, "noise": spec, "method": method, "seed": seed,
                       "test_accuracy": clf.score(x_test, y_test), "best_epoch": clf.best_epoch_,
                       "seconds": time.perf_counter() - t0, **metrics.flagged_metrics(flagged, y != y_true)}
                cell.parent.mkdir(parents=True, exist_ok=True)
                cell.write_text(json.dumps(row))
                print(json.dumps(row), flush=True)


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    if np.isnan(values).any():
        values = values[~np.isnan(values)]
        if not len(values):
            return "–"
    return f"{values.mean():.3f}" + (f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else "")


def _f1(row: dict) -> float:
    """F1, 0 where nothing was flagged (precision undefined, recall 0)."""
    return 0.0 if row["f1"] != row["f1"] else row["f1"]


def table(args) -> str:
    cells = [json.loads(p.read_text()) for p in sorted((Path(args.out) / "cells").glob("*.json"))]
    lines = []
    for part, key in (("mnist", lambda c: ("MNIST n=1000", c["noise"])),
                      ("tabular", lambda c: (c["dataset"], c["noise"]))):
        groups: dict = {}
        for c in (c for c in cells if c["part"] == part):
            groups.setdefault(key(c), {}).setdefault(c["method"], []).append(c)
        for (dataset, spec), by_method in sorted(groups.items()):
            lines += [f"\n{dataset}, {spec}\n", "| method | test acc (best val) | label-issue F1 | precision | recall | "
                      "best epochs | seeds |", "|---|---|---|---|---|---|---|"]
            for method in METHODS:
                rows = by_method.get(method)
                if rows:
                    lines.append(f"| {method} | {_mean_std([r['test_accuracy'] for r in rows])} | "
                                 f"{_mean_std([_f1(r) for r in rows])} | {_mean_std([r['precision'] for r in rows])} | "
                                 f"{_mean_std([r['recall'] for r in rows])} | "
                                 f"{', '.join(str(r['best_epoch']) for r in rows)} | {len(rows)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["mnist", "tabular", "table"])
    p.add_argument("--out", default="benchmarks/out/modern")
    p.add_argument("--noise", nargs="+", default=["uniform:0.8", "pairflip:0.4"])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="noisy validation share of the official training set (the paper: 0.2; 0.05 to save CPU time)")
    p.add_argument("--tabular", nargs="+", default=["digits/uniform:0.4", "digits/pairflip:0.4",
                                                    "breast_cancer/uniform:0.4"], help="DATASET/NOISE settings")
    p.add_argument("--data-dir", default=os.environ.get("LIMITLAB_DATA"))
    args = p.parse_args()
    if args.part == "table":
        print(table(args))
    else:
        (mnist if args.part == "mnist" else tabular)(args)


if __name__ == "__main__":
    sys.exit(main())
