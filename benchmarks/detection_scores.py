"""Which label-error score to rank by: the best checkpoint's classifier against its probabilities
averaged over the run's epochs, disagreement against margin, LIMIT's q-network, combinations.

Each cell (dataset × noise × method × seed) trains one run with limitlab's own pieces
(prepare_data, build_run_objective, make_optimizer, train_one_epoch, predict) and, after every
epoch, predicts the training rows with the classifier (and the q-network for LIMIT runs); the best
epoch is the one of highest noisy-validation accuracy, as in ``limitlab train``. Probability sources:

- ``f@best`` / ``q@best``: the best epoch's classifier / q-network softmax;
- ``f@avg`` / ``q@avg``: their mean over all epochs trained (EpochAverage);
- ``f@avg-to-best`` / ``q@avg-to-best``: their mean over epochs 1..best (what an average saved with
  the best checkpoint holds);
- ``(f+q)@...``: the mean of the two networks' softmax.

Functionals of a source P: ``disagree`` = 1 − P_ỹ, ``margin`` = (1 − (P_ỹ − max_{k≠ỹ} P_k)) / 2,
``mismatch`` = ‖e_ỹ − P‖₂ (today's LIMIT score for P = q@best). Measured against the corruption mask
of the training rows: AUROC, precision at k = the true number of errors (P@k; at that k, recall and
F1 equal it), and F1 of the source's own flag rule (argmax P ≠ ỹ). Also, for the best checkpoint,
the same on the noisy validation rows (out-of-sample: the networks never trained on them).

Selection protocol: the score is CHOSEN on seed 0 (mean rank over cells) and CONFIRMED on seeds ≥ 1.
No test split is used.

    OMP_NUM_THREADS=1 python benchmarks/detection_scores.py --out benchmarks/out/detection_scores --seeds 0 1
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

from limitlab import metrics
from limitlab.analysis.scores import margin_score
from limitlab.epoch_probs import EpochAverage
from limitlab.config import Config
from limitlab.data.run import prepare_data
from limitlab.runtime import Runtime
from limitlab.train import accuracy, build_run_objective, make_optimizer, predict, train_one_epoch

# dataset name → (limitlab --dataset, train_size, epochs)
DATASETS = {
    "digits": ("digits", None, 60),                 # bundled 8×8 images (mlp)
    "breast_cancer": ("table:{tables}/breast_cancer.npz", None, 60),   # tabular benchmark's table (mlp)
    "digits_table": ("table:{tables}/digits_table.npz", None, 60),     # tabular benchmark's digits as features
    "mnist1k": ("mnist", 1000, 20),                 # MNIST images, n = 1000 (cnn4)
}
NOISES = ("uniform:0.2", "uniform:0.4", "pairflip:0.3")
METHODS = ("ce", "limit-l")
FUNCTIONALS = ("disagree", "margin", "mismatch")


def write_tables(folder: Path) -> None:
    """The tabular benchmark's scikit-learn datasets as .npz tables (X, y; limitlab holds out 20% as test)."""
    from sklearn.datasets import load_breast_cancer, load_digits

    folder.mkdir(parents=True, exist_ok=True)
    for name, loader in (("breast_cancer", load_breast_cancer), ("digits_table", load_digits)):
        x, y = loader(return_X_y=True)
        np.savez(folder / f"{name}.npz", X=x.astype(np.float32), y=y.astype(np.int64))


def functional(name: str, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if name == "disagree":
        return 1.0 - probs[np.arange(len(labels)), labels]
    if name == "margin":
        return margin_score(probs, labels)
    onehot = np.eye(probs.shape[1])[labels]
    return np.linalg.norm(onehot - probs, axis=1)


def evaluate(sources: dict[str, np.ndarray], labels: np.ndarray, corrupted: np.ndarray) -> dict:
    k = int(corrupted.sum())
    out = {}
    for src, p in sources.items():
        f1 = metrics.flagged_metrics(p.argmax(1) != labels, corrupted)["f1"]
        f1 = 0.0 if np.isnan(f1) and k else f1  # nothing flagged although there are errors: recall 0
        for fn in FUNCTIONALS:
            s = functional(fn, p, labels)
            out[f"{fn}({src})"] = {"auroc": metrics.auroc(s, corrupted),
                                   "p_at_k": metrics.precision_recall_at_k(s, corrupted, k)[0] if k else float("nan"),
                                   "f1": f1}
    return out


def run_cell(dataset: str, noise: str, method: str, seed: int, tables: Path, max_epochs: int | None = None) -> dict:
    spec, train_size, epochs = DATASETS[dataset]
    epochs = min(epochs, max_epochs or epochs)
    config = Config(dataset=spec.format(tables=tables), noise=noise, method=method, seed=seed, train_size=train_size,
                    epochs=epochs, patience=None, device="cpu", eval_batch_size=1024)
    runtime = Runtime(torch.device("cpu"))
    data = prepare_data(config, runtime.device)
    torch.manual_seed(seed)
    objective, _ = build_run_objective(config, data, runtime)
    optimizer = make_optimizer(objective, config, runtime.device)
    generator = torch.Generator().manual_seed(seed)
    q_net = getattr(objective, "q_network", None)
    avg_f, avg_q = EpochAverage(), EpochAverage()
    best, best_acc, best_epoch = None, -1.0, 0
    t0 = time.perf_counter()

    def proba(model, split):
        return predict(model, data, split, batch_size=1024, runtime=runtime, proba=True).numpy().astype(np.float64)

    for epoch in range(1, epochs + 1):
        objective.start_epoch(epoch)
        train_one_epoch(objective, optimizer, data, batch_size=config.batch_size, generator=generator, runtime=runtime)
        pf = proba(objective.classifier, data.train)
        avg_f.on_epoch(pf)
        pq = proba(q_net, data.train) if q_net is not None else None
        if pq is not None:
            avg_q.on_epoch(pq)
        val_acc = accuracy(objective.classifier, data, data.val, batch_size=1024, runtime=runtime)
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best = {"f": pf, "q": pq, "val_f": proba(objective.classifier, data.val),
                    "val_q": proba(q_net, data.val) if q_net is not None else None,
                    "avg_f": avg_f.mean, "avg_q": avg_q.mean if q_net is not None else None}
    rec = data.record
    labels, corrupted = np.asarray(rec["train_noisy"]), np.asarray(rec["train_corrupted"], dtype=bool)
    sources = {"f@best": best["f"], "f@avg": avg_f.mean, "f@avg-to-best": best["avg_f"]}
    val_sources = {"f@best": best["val_f"]}
    if q_net is not None:
        sources.update({"q@best": best["q"], "q@avg": avg_q.mean, "(f+q)@best": (best["f"] + best["q"]) / 2,
                        "(f+q)@avg": (avg_f.mean + avg_q.mean) / 2, "q@avg-to-best": best["avg_q"],
                        "(f+q)@avg-to-best": (best["avg_f"] + best["avg_q"]) / 2})
        val_sources.update({"q@best": best["val_q"], "(f+q)@best": (best["val_f"] + best["val_q"]) / 2})
    val_labels, val_corrupted = np.asarray(rec["val_labels"]), np.asarray(rec["val_corrupted"], dtype=bool)
    return {"dataset": dataset, "noise": noise, "method": method, "seed": seed, "n": len(labels),
            "n_corrupted": int(corrupted.sum()), "best_epoch": best_epoch, "epochs": epochs,
            "seconds": time.perf_counter() - t0,
            "train": evaluate(sources, labels, corrupted),
            "validation": evaluate(val_sources, val_labels, val_corrupted), "n_val": len(val_labels),
            "n_val_corrupted": int(val_corrupted.sum())}


def mean_table(cells: list[dict], part: str) -> dict:
    """score → metric → mean over cells (cells without a score are skipped), plus its mean rank by AUROC."""
    scores = sorted({s for c in cells for s in c[part]})
    table = {}
    for s in scores:
        rows = [c[part][s] for c in cells if s in c[part]]
        # F1 of an empty flagged set (cells cached before the fix above wrote NaN) is 0: every cell has errors
        rows = [{**r, "f1": 0.0 if np.isnan(r["f1"]) else r["f1"]} for r in rows]
        table[s] = {m: float(np.nanmean([r[m] for r in rows])) for m in ("auroc", "p_at_k", "f1")} | {"cells": len(rows)}
    return table


def markdown(cells: list[dict], title: str, part: str = "train") -> str:
    lines = [f"#### {title}", "", "| method | score | cells | AUROC | P@k (k = #errors) | F1 (argmax ≠ ỹ) |",
             "|---|---|---|---|---|---|"]
    for method in METHODS:
        sub = [c for c in cells if c["method"] == method]
        if not sub:
            continue
        table = mean_table(sub, part)
        for s, v in sorted(table.items(), key=lambda kv: -kv[1]["auroc"]):
            lines.append(f"| {method} | {s} | {v['cells']} | {v['auroc']:.4f} | {v['p_at_k']:.4f} | {v['f1']:.4f} |")
    return "\n".join(lines) + "\n"


CURRENT = {"ce": "disagree(f@best)", "limit-l": "mismatch(q@best)"}  # detect's default before this comparison


def choice(cells: list[dict]) -> str:
    """Per method: the score of highest mean AUROC on seed 0 (all scores, and best-checkpoint scores
    only), then the same scores on the other seeds next to detect's previous default."""
    lines = ["#### Chosen on seed 0, confirmed on seeds ≥ 1 (training rows)", "",
             "| method | pick | score | seed-0 AUROC | seeds ≥ 1: AUROC | P@k | F1 |", "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        choose = mean_table([c for c in cells if c["method"] == method and c["seed"] == 0], "train")
        confirm = mean_table([c for c in cells if c["method"] == method and c["seed"] != 0], "train")
        if not choose or not confirm:
            continue
        picks = {"previous default": CURRENT[method],
                 "best checkpoint only": max((s for s in choose if "@best" in s), key=lambda s: choose[s]["auroc"]),
                 "any": max(choose, key=lambda s: choose[s]["auroc"])}
        for what, s in picks.items():
            v = confirm.get(s)
            lines.append(f"| {method} | {what} | {s} | {choose[s]['auroc']:.4f} | "
                         + (f"{v['auroc']:.4f} | {v['p_at_k']:.4f} | {v['f1']:.4f} |" if v else "– | – | – |"))
    return "\n".join(lines) + "\n"


KEY = {"ce": ("disagree(f@best)", "margin(f@best)", "margin(f@avg-to-best)", "margin(f@avg)"),
       "limit-l": ("mismatch(q@best)", "disagree((f+q)@best)", "disagree(f@avg-to-best)", "disagree(f@avg)")}


def per_setting(cells: list[dict]) -> str:
    """AUROC / P@k / F1 of the key scores per dataset × noise × method, means over the seeds."""
    lines = ["#### Per setting (training rows, means over seeds): AUROC / P@k / F1", "",
             "| dataset | noise | method | seeds | " + " | ".join(f"score {i + 1}" for i in range(4)) + " |",
             "|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        lines.append(f"| | | {method} | | " + " | ".join(f"**{k}**" for k in KEY[method]) + " |")
        for dataset in DATASETS:
            for noise in NOISES:
                sub = [c for c in cells if (c["dataset"], c["noise"], c["method"]) == (dataset, noise, method)]
                if not sub:
                    continue
                table = mean_table(sub, "train")
                lines.append(f"| {dataset} | {noise} | {method} | {len(sub)} | " + " | ".join(
                    f"{table[k]['auroc']:.3f} / {table[k]['p_at_k']:.3f} / {table[k]['f1']:.3f}" for k in KEY[method])
                    + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/out/detection_scores")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--noises", nargs="+", default=list(NOISES))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--max-epochs", type=int, default=None, help="cap every dataset's epochs")
    ap.add_argument("--aggregate-only", action="store_true", help="tables from the finished cells only; train nothing")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    write_tables(out / "tables")
    cells = []
    for seed in args.seeds:
        for dataset in args.datasets:
            for noise in args.noises:
                for method in args.methods:
                    path = out / "cells" / f"{dataset}_{noise.replace(':', '')}_{method}_s{seed}.json"
                    if path.exists():
                        cells.append(json.loads(path.read_text()))
                        continue
                    if args.aggregate_only:
                        continue
                    cell = run_cell(dataset, noise, method, seed, (out / "tables").resolve(), args.max_epochs)
                    path.write_text(json.dumps(cell, indent=1))
                    cells.append(cell)
                    print(f"{path.name}: {cell['seconds']:.0f} s, best epoch {cell['best_epoch']}", file=sys.stderr,
                          flush=True)
    text = choice(cells) + "\n" + per_setting(cells) + "\n"
    text += markdown([c for c in cells if c["seed"] == 0], "Choice: seed 0, training rows (means over cells)")
    text += "\n" + markdown([c for c in cells if c["seed"] != 0], "Confirmation: seeds ≥ 1, training rows")
    text += "\n" + markdown(cells, "Held-out validation rows, best checkpoint (all seeds)", part="validation")
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(cells, indent=1))
    print(text)


if __name__ == "__main__":
    main()
