"""Small tables: do the estimator's defaults hold against LogisticRegression on the same noisy labels?

Data: scikit-learn's bundled tables (no download): iris (150 × 4, K = 3), wine (178 × 13, K = 3),
breast_cancer (569 × 30, K = 2), digits (1797 × 64, K = 10); a stratified 25% clean test split per
seed; uniform noise p (default 0.3) on the training labels only (limitlab.noise, seeded).
Routes, per dataset × seed, one process, one thread:

- ``limitlab``: ``LimitClassifier()`` with its defaults (limit-l); test accuracy, and the flagged
  set of its ``label_issues_`` (one fit).
- ``limitlab-before``: the defaults before the step budget (``epochs=100, patience=20,
  validation_fraction=0.2, batch_size=256, module="mlp"``: 4 × 512, constant lr).
- ``logreg``: StandardScaler + LogisticRegression(max_iter=1000) on the noisy labels: test accuracy;
  its label-issue F1 through cleanlab: ``cleanlab.filter.find_label_issues`` on 5-fold
  ``cross_val_predict`` probabilities of the same pipeline.

Precision / recall / F1 of the flagged set against the corruption mask. The test split plays no part
in any choice of the defaults.

    OMP_NUM_THREADS=1 python benchmarks/small_tables.py --out benchmarks/out/small_tables
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BEFORE = dict(epochs=100, patience=20, validation_fraction=0.2, batch_size=256, module="mlp")
DATASETS = ["iris", "wine", "breast_cancer", "digits"]


def load(name: str, seed: int):
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return train_test_split(x.astype(np.float32), y, test_size=0.25, stratify=y, random_state=seed)


def run(dataset: str, seed: int, p: float, routes: list[str]) -> list[dict]:
    import cleanlab.filter
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from limitlab import LimitClassifier, metrics, noise

    x, x_test, y_true, y_test = load(dataset, seed)
    k = int(y_true.max()) + 1
    y = noise.corrupt_labels(y_true, noise.parse_noise(f"uniform:{p}", k), seed)
    corrupted = y != y_true
    rows = []
    for route in routes:
        t0 = time.perf_counter()
        if route.startswith("limitlab"):
            clf = LimitClassifier(random_state=seed, **(BEFORE if route == "limitlab-before" else {})).fit(x, y)
            flagged = clf.label_issues_["is_label_issue"].to_numpy()
            extra = {"epochs_run": len(clf.history_), "best_epoch": clf.best_epoch_}
        else:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
            probs = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), x, y,
                                      cv=5, method="predict_proba")
            flagged = cleanlab.filter.find_label_issues(y, probs, n_jobs=1)
            extra = {}
        rows.append({"dataset": dataset, "seed": seed, "n_train": len(y), "route": route,
                     "test_accuracy": float(clf.score(x_test, y_test)), "seconds": time.perf_counter() - t0,
                     **metrics.flagged_metrics(flagged, corrupted), **extra})
        print(json.dumps(rows[-1]), flush=True)
    del torch
    return rows


def summary(rows: list[dict]) -> str:
    lines = ["| dataset | train rows | route | test accuracy | F1 | precision | recall | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for route in dict.fromkeys(r["route"] for r in rows):
            rs = [r for r in rows if r["dataset"] == dataset and r["route"] == route]
            if not rs:
                continue
            ms = lambda m: f"{np.nanmean([r[m] for r in rs]):.3f} ± {np.nanstd([r[m] for r in rs]):.3f}"  # noqa: E731
            lines.append(f"| {dataset} | {rs[0]['n_train']} | {route} | {ms('test_accuracy')} | {ms('f1')} | "
                         f"{np.nanmean([r['precision'] for r in rs]):.3f} | {np.nanmean([r['recall'] for r in rs]):.3f} | "
                         f"{np.mean([r['seconds'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--routes", nargs="+", default=["limitlab", "logreg", "limitlab-before"])
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = [r for d in args.datasets for s in args.seeds for r in run(d, s, args.noise, args.routes)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "small-tables.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")
    text = summary(rows)
    (out / "small-tables.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
