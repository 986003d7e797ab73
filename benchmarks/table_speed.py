"""Time to result on tables: limitlab's ``find_label_issues`` against cleanlab's cross-validation routes.

Data: scikit-learn's ``make_classification`` (20 features, 10 informative, 5 redundant, K = 5,
seeded), uniform label noise p = 0.3 (limitlab.noise, seeded), at 1,000, 10,000 and 100,000 rows.
Routes, alternated in this one process (the order rotates every repeat) so that they see the same
load, all with the same number of threads (torch and OpenMP/BLAS through threadpoolctl):

- ``limitlab``: ``limitlab.find_label_issues(X, y)`` with the estimator's defaults (one fit, no CV).
- ``limitlab-before``: the same with the defaults before the step budget (``epochs=100,
  patience=20, validation_fraction=0.2, batch_size=256, module="mlp"``: 4 × 512, constant lr).
- ``cleanlab-hgb``: ``cleanlab.filter.find_label_issues`` on ``cross_val_predict(
  HistGradientBoostingClassifier(), X, y, cv=5, method="predict_proba")``.
- ``cleanlab-lr``: the same around StandardScaler + LogisticRegression(max_iter=1000).

Reported per route and size: seconds (wall-clock time to the flagged set, from arrays in memory), CPU seconds
of the process (less sensitive to other jobs on the machine) and the
flagged set's precision / recall / F1 against the corruption mask. ``--set NAME=VALUE`` overrides a
constant of limitlab.budget (STEPS, PATIENCE_STEPS, ...) to measure a choice.

    OMP_NUM_THREADS=1 python benchmarks/table_speed.py --out benchmarks/out/table_speed
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROUTES = ["limitlab", "limitlab-before", "cleanlab-hgb", "cleanlab-lr"]
PARAMS: dict = {}  # --param: estimator parameters of the limitlab route
BEFORE = dict(epochs=100, patience=20, validation_fraction=0.2, batch_size=256, module="mlp")


def make_table(n: int, seed: int, noise_rate: float):
    from sklearn.datasets import make_classification

    from limitlab import noise

    x, y_true = make_classification(n_samples=n, n_features=20, n_informative=10, n_redundant=5, n_classes=5,
                                    random_state=seed)
    y = noise.corrupt_labels(y_true, noise.parse_noise(f"uniform:{noise_rate}", 5), seed)
    return x.astype(np.float32), y, y != y_true


def run_route(route: str, x, y, seed: int, folds: int) -> np.ndarray:
    """The flagged mask of one route."""
    if route.startswith("limitlab"):
        from limitlab import find_label_issues

        params = BEFORE if route == "limitlab-before" else PARAMS
        return find_label_issues(x, y, random_state=seed, **params)["is_label_issue"].to_numpy()
    import cleanlab.filter
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = (HistGradientBoostingClassifier(random_state=seed) if route == "cleanlab-hgb"
           else make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)))
    probs = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")
    return cleanlab.filter.find_label_issues(y, probs, n_jobs=1)


def load_average() -> float:
    return os.getloadavg()[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--routes", nargs="+", default=["limitlab", "cleanlab-hgb", "cleanlab-lr"], choices=ROUTES)
    ap.add_argument("--repeats", type=int, default=1, help="rounds of all routes per size (seeds 0, 1, ...)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="override limitlab.budget constants")
    ap.add_argument("--param", nargs="*", default=[], metavar="NAME=VALUE",
                    help="LimitClassifier parameters of the limitlab route (numbers)")
    ap.add_argument("--plot", default=None, metavar="PNG",
                    help="only draw seconds against rows from every OUT/table-speed*.json to PNG")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    args = ap.parse_args()
    if args.plot:
        return plot(sorted(Path(args.out).glob("table-speed*.json")), Path(args.plot))

    import torch
    from threadpoolctl import threadpool_limits

    from limitlab import budget, metrics

    for item in args.set:
        name, value = item.split("=")
        setattr(budget, name, type(getattr(budget, name))(value))
    for item in args.param:
        name, value = item.split("=")
        PARAMS[name] = float(value) if "." in value or "e" in value else int(value)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with threadpool_limits(args.threads):
        for n in args.sizes:
            for rep in range(args.repeats):
                x, y, corrupted = make_table(n, rep, args.noise)
                k = rep % len(args.routes)
                for route in args.routes[k:] + args.routes[:k]:
                    load = load_average()
                    t0, c0 = time.perf_counter(), time.process_time()
                    flagged = run_route(route, x, y, rep, args.folds)
                    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
                    row = {"n": n, "seed": rep, "route": route, "seconds": secs, "cpu_seconds": cpu, "load_before": load,
                           "threads": args.threads, **metrics.flagged_metrics(flagged, corrupted)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    result = {"args": vars(args), "budget": {k: getattr(budget, k) for k in dir(budget) if k.isupper()}, "rows": rows}
    (out / f"table-speed{args.tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(summary(rows))


def plot(paths: list[Path], png: Path) -> None:
    """Median wall-clock and CPU seconds against rows, one line per route (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for p in paths for r in json.loads(p.read_text())["rows"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in zip(axes, ("seconds", "cpu_seconds"), ("wall-clock (machine shared)", "CPU of the process")):
        for route in dict.fromkeys(r["route"] for r in rows):
            ns = sorted({r["n"] for r in rows if r["route"] == route})
            ys = [np.median([r[key] for r in rows if r["route"] == route and r["n"] == n]) for n in ns]
            ax.plot(ns, ys, "o-", label=route)
        ax.set(xscale="log", yscale="log", xlabel="rows (20 features, K = 5, 30% noise)", title=title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds to the flagged set (1 thread)")
    axes[0].legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    print(f"plot: {png}")


def summary(rows: list[dict]) -> str:
    lines = ["| rows | route | seconds (median) | CPU seconds (median) | precision | recall | F1 | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for n in sorted({r["n"] for r in rows}):
        for route in dict.fromkeys(r["route"] for r in rows):
            rs = [r for r in rows if r["n"] == n and r["route"] == route]
            if rs:
                lines.append(f"| {n:,} | {route} | {np.median([r['seconds'] for r in rs]):.1f} | "
                             f"{np.median([r['cpu_seconds'] for r in rs]):.1f} | "
                             + " | ".join(f"{np.mean([r[m] for r in rs]):.3f}" for m in ("precision", "recall", "f1"))
                             + f" | {len(rs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
