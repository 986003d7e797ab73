"""Tables and embeddings, head to head with cleanlab: test accuracy and label-issue detection.

Datasets (features as arrays, a clean held-out test split):
- ``digits``: scikit-learn's load_digits (1797 × 64, K = 10); a stratified 25% test split per seed.
- ``breast_cancer``: scikit-learn's load_breast_cancer (569 × 30, K = 2); likewise.
- ``mnist``: MNIST as flat 784-feature arrays (pixels / 255), read with limitlab's IDX reader:
  n = 10,000 training rows drawn per seed from the official training set, tested on the official
  10,000-image test set.
Noise on the training labels only (limitlab.noise, seeded): uniform p ∈ {0.2, 0.4}, and pair flips
(class i → i+1 mod K) p ∈ {0.2, 0.4} where K > 2.

Routes, per dataset × noise × seed:
- ``limit-l``: LimitClassifier(method="limit-l") with its defaults (β 10, the step budget of
  limitlab.budget); detection from its ``label_issues_`` (one run, no CV).
- ``ce``: the same network trained with cross-entropy (LimitClassifier(method="ce")).
- ``logreg``: StandardScaler + LogisticRegression (scikit-learn defaults, max_iter 1000).
- ``cleanlab(logreg)`` and ``cleanlab(ce)``: cleanlab's recipe around those classifiers: 5-fold
  cross-validated probabilities (cleanlab's ``estimate_cv_predicted_probabilities``, the same
  folds CleanLearning uses), ``cleanlab.filter.find_label_issues`` on them (cleanlab's defaults),
  then ``CleanLearning(...).fit(X, y, label_issues=...)`` retrains on the rows not flagged.
Reported: test accuracy, and for the detecting routes precision / recall / F1 of the flagged set
against the corruption mask and AUROC of the score (LIMIT: 1 − label_quality; cleanlab: 1 − its
self-confidence label quality), and seconds (cleanlab routes: CV + detection + final fit).
Per-epoch cost: limit-l and ce are fitted in alternation on the same MNIST arrays in one process
(``--speed-rounds``), so that both see the same load; per-epoch seconds come from ``history_``
(training pass only, and with the per-epoch evaluation passes). Each cell also records its fits'
per-epoch seconds, but those fits run minutes apart, under whatever else the machine is doing.

Needs the ``bench`` extra: ``pip install -e '.[bench]'`` (cleanlab 2.9, scikit-learn, pandas).

    OMP_NUM_THREADS=1 python benchmarks/tabular.py --out benchmarks/out/tabular --data-dir ../shared/data

Results are cached per cell in OUT/cells/*.json (re-running skips finished cells); the aggregated
table goes to OUT/table.md and OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from limitlab import LimitClassifier, metrics, noise
from limitlab.data import load_dataset

ROUTES = ["limit-l", "ce", "logreg", "cleanlab(logreg)", "cleanlab(ce)"]
DETECTING = ["limit-l", "cleanlab(logreg)", "cleanlab(ce)"]


def import_bench():
    try:
        import cleanlab  # noqa: F401
        import cleanlab.classification
        import cleanlab.count
        import cleanlab.filter
        import cleanlab.rank
        import sklearn  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs the bench extra: pip install -e '.[bench]' (cleanlab, scikit-learn, pandas)")
    return cleanlab


def load(name: str, seed: int, args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test), clean labels, float32 features."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    if name in ("digits", "breast_cancer"):
        x, y = (load_digits if name == "digits" else load_breast_cancer)(return_X_y=True)
        x_tr, x_te, y_tr, y_te = train_test_split(x.astype(np.float32), y, test_size=0.25, stratify=y,
                                                  random_state=seed)
        return x_tr, y_tr, x_te, y_te
    if name == "mnist":
        data = load_dataset("mnist", args.data_dir)
        pick = np.random.default_rng(seed).permutation(len(data.train_labels))[:args.mnist_n]
        flat = lambda images: images.reshape(len(images), -1).numpy().astype(np.float32) / 255.0  # noqa: E731
        return (flat(data.train_images[pick]), data.train_labels[pick].numpy(), flat(data.test_images),
                data.test_labels.numpy())
    raise SystemExit(f"unknown dataset {name}")


def noise_settings(k: int, rates) -> list[str]:
    specs = [f"uniform:{p}" for p in rates]
    if k > 2:
        specs += [f"pairflip:{p}" for p in rates]
    return specs


def detection(flagged: np.ndarray, suspicion: np.ndarray, corrupted: np.ndarray) -> dict:
    return {**metrics.flagged_metrics(flagged, corrupted), "auroc": metrics.auroc(suspicion, corrupted),
            "flagged": int(flagged.sum())}


def epoch_seconds(clf) -> dict:
    train = [h["train_seconds"] for h in clf.history_]
    total = [h["seconds"] for h in clf.history_]
    return {"epochs_run": len(train), "best_epoch": clf.best_epoch_,
            "train_seconds_per_epoch": float(np.mean(train)), "seconds_per_epoch": float(np.mean(total))}


def run_cell(dataset: str, spec: str, seed: int, args, cleanlab) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y_true, x_test, y_test = load(dataset, seed, args)
    k = int(y_true.max()) + 1
    y = noise.corrupt_labels(y_true, noise.parse_noise(spec, k), seed)
    corrupted = y != y_true
    net = dict(random_state=seed, **{k: getattr(args, k) for k in ("epochs", "patience") if getattr(args, k) is not None})
    rows = {}

    def timed(fn):
        t0 = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t0

    limit, secs = timed(lambda: LimitClassifier(method="limit-l", **net).fit(x, y))
    issues = limit.label_issues_
    rows["limit-l"] = {"test_accuracy": limit.score(x_test, y_test), "seconds": secs, **epoch_seconds(limit),
                       **detection(issues["is_label_issue"].to_numpy(), 1 - issues["label_quality"].to_numpy(),
                                   corrupted)}
    ce, secs = timed(lambda: LimitClassifier(method="ce", **net).fit(x, y))
    rows["ce"] = {"test_accuracy": ce.score(x_test, y_test), "seconds": secs, **epoch_seconds(ce)}

    def logreg():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    lr, secs = timed(lambda: logreg().fit(x, y))
    rows["logreg"] = {"test_accuracy": lr.score(x_test, y_test), "seconds": secs}

    for name, make in (("cleanlab(logreg)", logreg), ("cleanlab(ce)", lambda: LimitClassifier(method="ce", **net))):
        t0 = time.perf_counter()
        probs = cleanlab.count.estimate_cv_predicted_probabilities(x, y, clf=make(), cv_n_folds=args.folds,
                                                                   seed=seed)
        flagged = cleanlab.filter.find_label_issues(y, probs, n_jobs=1)
        quality = cleanlab.rank.get_label_quality_scores(y, probs)
        cl = cleanlab.classification.CleanLearning(make(), seed=seed, cv_n_folds=args.folds, verbose=False)
        cl.fit(x, y, label_issues=flagged)
        rows[name] = {"test_accuracy": cl.score(x_test, y_test), "seconds": time.perf_counter() - t0,
                      **detection(flagged, 1 - quality, corrupted)}
    return {"dataset": dataset, "noise": spec, "seed": seed, "n": len(y), "k": k,
            "realised_rate": float(corrupted.mean()), "rows": rows}


def speed(args, rounds: int, epochs: int = 3) -> dict:
    """Seconds per epoch of limit-l and ce on the same MNIST arrays (seed 0's 10,000 rows), fitted in
    alternation in this one process, so that both see the same load on the machine. Per fit, the
    epochs' training passes (``train_seconds``) and whole epochs with the evaluation passes
    (``seconds``); the ratio is of the medians."""
    x, y, _, _ = load("mnist", 0, args)
    times = {m: {"train": [], "total": []} for m in ("limit-l", "ce")}
    for _ in range(rounds):
        for method in times:
            clf = LimitClassifier(method=method, epochs=epochs, patience=None, random_state=0).fit(x, y)
            times[method]["train"] += [h["train_seconds"] for h in clf.history_]
            times[method]["total"] += [h["seconds"] for h in clf.history_]
    med = {m: {k: float(np.median(v)) for k, v in t.items()} for m, t in times.items()}
    return {"rounds": rounds, "epochs_per_fit": epochs, "n": len(y), "seconds": times, "median": med,
            "ratio_train": med["limit-l"]["train"] / med["ce"]["train"],
            "ratio_total": med["limit-l"]["total"] / med["ce"]["total"]}


def speed_table(result: dict) -> str:
    med = result["median"]
    return "\n".join([
        f"Seconds per epoch on MNIST arrays (n = {result['n']}, 20% held out for validation), medians of "
        f"{result['rounds']} alternating fits × {result['epochs_per_fit']} epochs:", "",
        "| | limit-l | ce | limit-l / ce |", "|---|---|---|---|",
        f"| training pass | {med['limit-l']['train']:.2f} | {med['ce']['train']:.2f} | {result['ratio_train']:.2f} |",
        f"| with the evaluation passes | {med['limit-l']['total']:.2f} | {med['ce']['total']:.2f} | "
        f"{result['ratio_total']:.2f} |"])


def mean_std(values) -> str:
    v = np.asarray([x for x in values if x is not None and not np.isnan(x)], dtype=float)
    if not len(v):
        return "-"
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def table(cells: list[dict]) -> str:
    lines = ["| dataset | noise | route | test accuracy | precision | recall | F1 | AUROC | seconds | seeds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["noise"]), []).append(c)
    for (dataset, spec), group in groups.items():
        for route in ROUTES:
            rs = [c["rows"][route] for c in group]
            det = [mean_std(r.get(m) for r in rs) for m in ("precision", "recall", "f1", "auroc")] \
                if route in DETECTING else ["", "", "", ""]
            lines.append(f"| {dataset} | {spec} | {route} | {mean_std(r['test_accuracy'] for r in rs)} | "
                         + " | ".join(det) + f" | {np.mean([r['seconds'] for r in rs]):.1f} | {len(rs)} |")
    return "\n".join(lines)


def targets(cells: list[dict]) -> str:
    """Per dataset × noise: LIMIT's F1 against the best cleanlab route, and its accuracy against CE and
    the best route (means over seeds)."""
    lines = ["| dataset | noise | F1 limit-l | best cleanlab F1 | F1 target | acc limit-l | acc ce | best acc (route) "
             "| accuracy target |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["noise"]), []).append(c)
    for (dataset, spec), group in groups.items():
        mean = {route: {m: float(np.mean([c["rows"][route].get(m, np.nan) for c in group]))
                        for m in ("test_accuracy", "f1")} for route in ROUTES}
        best_cl = max(("cleanlab(logreg)", "cleanlab(ce)"), key=lambda r: mean[r]["f1"])
        best_acc = max(ROUTES, key=lambda r: mean[r]["test_accuracy"])
        f1_ok = mean["limit-l"]["f1"] >= mean[best_cl]["f1"]
        acc_ok = (mean["limit-l"]["test_accuracy"] > mean["ce"]["test_accuracy"]
                  and mean["limit-l"]["test_accuracy"] >= mean[best_acc]["test_accuracy"] - 0.01)
        lines.append(f"| {dataset} | {spec} | {mean['limit-l']['f1']:.3f} | {mean[best_cl]['f1']:.3f} ({best_cl}) | "
                     f"{'met' if f1_ok else 'MISSED'} | {mean['limit-l']['test_accuracy']:.3f} | "
                     f"{mean['ce']['test_accuracy']:.3f} | {mean[best_acc]['test_accuracy']:.3f} ({best_acc}) | "
                     f"{'met' if acc_ok else 'MISSED'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ (else $LIMITLAB_DATA)")
    ap.add_argument("--datasets", nargs="+", default=["digits", "breast_cancer", "mnist"])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="LimitClassifier: most epochs (default: its own, 'auto')")
    ap.add_argument("--patience", type=int, default=None,
                    help="LimitClassifier: early-stopping patience (default: its own, 'auto')")
    ap.add_argument("--folds", type=int, default=5, help="cleanlab routes: cross-validation folds")
    ap.add_argument("--mnist-n", type=int, default=10000, help="MNIST training rows")
    ap.add_argument("--speed-rounds", type=int, default=3,
                    help="alternating limit-l / ce fits for the per-epoch cost on MNIST (0: skip)")
    args = ap.parse_args()
    cleanlab = import_bench()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    cells = []
    for dataset in args.datasets:
        k = 2 if dataset == "breast_cancer" else 10
        for spec in noise_settings(k, args.rates):
            for seed in args.seeds:
                path = out / "cells" / f"{dataset}_{spec.replace(':', '')}_seed{seed}.json"
                if path.exists():
                    cells.append(json.loads(path.read_text()))
                    continue
                t0 = time.perf_counter()
                cell = run_cell(dataset, spec, seed, args, cleanlab)
                path.write_text(json.dumps(cell, indent=2) + "\n")
                cells.append(cell)
                r = cell["rows"]
                print(f"{dataset} {spec} seed {seed}: " + ", ".join(
                    f"{k} acc {v['test_accuracy']:.3f}" + (f" F1 {v['f1']:.3f}" if "f1" in v else "")
                    for k, v in r.items()) + f" ({time.perf_counter() - t0:.0f}s)", flush=True)
    text = table(cells) + "\n\n" + targets(cells)
    if args.speed_rounds and "mnist" in args.datasets:
        path = out / "speed.json"
        if not path.exists():
            path.write_text(json.dumps(speed(args, args.speed_rounds), indent=2) + "\n")
        text += "\n\n" + speed_table(json.loads(path.read_text()))
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "cells": cells}, indent=2) + "\n")


if __name__ == "__main__":
    main()
