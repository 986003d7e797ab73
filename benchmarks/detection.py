"""Label-error detection: limitlab's scores from one LIMIT run against cleanlab's confident learning
fed with K-fold cross-validated CE predictions, on exactly the same noisy MNIST labels.

Routes, per uniform noise rate p (same seed, so the same split and the same noisy labels):

1. ``limit``: train one LIMIT run (default limit-l, β 10, up to --epochs with early stopping on
   noisy validation), then :func:`limitlab.analysis.detect.detect`. Score ‖e_ỹ − s(q)‖₂; flagged set: the
   classifier's prediction differs from the given label. No cross-validation: LIMIT's classifier
   never sees the labels, so its training-set outputs behave like out-of-sample ones.
2. ``limit+cleanlab``: ``cleanlab.filter.find_label_issues`` on the same LIMIT run's in-sample
   classifier probabilities (score 1 − s(f)_ỹ).
3. ``cv-ce+cleanlab``: the usual confident-learning recipe. The training set is split into --folds
   folds; for each fold a fresh cnn4 is trained with cross-entropy on the other folds
   (limitlab.train.train_one_epoch) and predicts the held-out fold, giving out-of-sample
   probabilities for every example; then ``find_label_issues(labels, pred_probs)``, score
   1 − out-of-sample p_ỹ. CE is trained for a FIXED number of epochs (--cv-epochs, default 10)
   without validation-based stopping, because CE fits the wrong labels later in training
   (memorization): a short, fixed budget is the standard way to keep its predictions useful.
   Several --cv-epochs values give one CV route each (how much the route depends on that budget).

Reported per route: precision, recall and F1 of the flagged set against the corruption mask, AUROC
of the score, and wall-clock compute time (LIMIT: its training as recorded in summary.json, which
includes the per-epoch validation pass its early stopping needs and a test pass at each new best
epoch, plus the scoring pass; CV: all fold trainings and predictions plus cleanlab). Prints a markdown table and
writes it to OUT/table.md (and the numbers to OUT/results.json). Finished LIMIT runs are reused,
interrupted ones resumed; CV probabilities are cached in OUT/cv_p{p}_k{folds}_e{epochs}.npz.

Needs cleanlab (benchmark only, not a limitlab dependency): ``pip install cleanlab``.

    python benchmarks/detection.py --out benchmarks/out/detection --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from limitlab import metrics
from limitlab.config import Config
from limitlab.analysis.detect import detect, run_outputs
from limitlab.data.run import Split, prepare_data
from limitlab.runtime import Runtime
from limitlab.train import build_run_objective, predict, train, train_one_epoch


def import_cleanlab():
    try:
        import cleanlab.filter
        import cleanlab.rank
    except ImportError:
        sys.exit("this benchmark needs cleanlab (numpy/scikit-learn/pandas only, no torch): pip install cleanlab")
    return cleanlab


def limit_config(args, p: float) -> Config:
    return Config(dataset=args.dataset, data_dir=args.data_dir, noise=f"uniform:{p}", train_size=args.train_size,
                  method=args.method, beta=args.beta, epochs=args.epochs, patience=args.patience,
                  seed=args.seed, batch_size=args.batch_size, device=args.device,
                  train_eval_every=args.train_eval_every, test_every=args.test_every)


def train_limit(args, p: float) -> tuple[Path, float]:
    """The LIMIT run for noise p (reused when finished) and its training seconds."""
    run = Path(args.out) / f"{args.method}_p{p}"
    if not (run / "summary.json").exists():
        resume = (run / "config.json").exists()
        train(limit_config(args, p), run, resume=resume, progress=False)
    return run, json.loads((run / "summary.json").read_text())["seconds"]


def cross_validated_probs(args, p: float, epochs: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Out-of-sample softmax [N, K] of K-fold CE models trained ``epochs`` epochs, the noisy labels [N],
    and the seconds taken."""
    cache = Path(args.out) / f"cv_p{p}_k{args.folds}_e{epochs}.npz"
    config = dataclasses.replace(limit_config(args, p), method="ce")
    runtime = Runtime(torch.device("cuda" if args.device == "cuda" else "cpu"))
    data = prepare_data(config, runtime.device)
    labels = data.train.labels.cpu().numpy()
    if cache.exists():
        saved = np.load(cache)
        if np.array_equal(saved["labels"], labels):
            return saved["probs"], labels, float(saved["seconds"])
    t0 = time.perf_counter()
    n = len(labels)
    folds = np.array_split(np.random.default_rng(args.seed).permutation(n), args.folds)
    probs = np.zeros((n, data.num_classes))
    for f, held in enumerate(folds):
        rest = torch.as_tensor(np.setdiff1d(np.arange(n), held), device=runtime.device)
        held_t = torch.as_tensor(held, device=runtime.device)
        fold = dataclasses.replace(data, train=Split(data.train.labels[rest], data.train.images[rest]),
                                   train_true=data.train_true[rest])
        torch.manual_seed(args.seed * 1000 + f)
        objective, _ = build_run_objective(config, fold, runtime)
        optimizer = torch.optim.Adam(objective.parameters(), lr=config.lr)
        generator = torch.Generator().manual_seed(args.seed * 1000 + f)
        for _ in range(epochs):
            train_one_epoch(objective, optimizer, fold, batch_size=config.batch_size, generator=generator, runtime=runtime)
        held_split = Split(data.train.labels[held_t], data.train.images[held_t])
        probs[held] = predict(objective.classifier, fold, held_split, batch_size=config.eval_batch_size, runtime=runtime,
                              proba=True).cpu().numpy()
        print(f"  p={p}: fold {f + 1}/{args.folds} done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, probs=probs, labels=labels, seconds=seconds)
    return probs, labels, seconds


def evaluate_flagged(name, flagged, scores, corrupted, seconds) -> dict:
    return {"route": name, "flagged": int(flagged.sum()), **metrics.flagged_metrics(flagged, corrupted),
            "auroc": metrics.auroc(scores, corrupted), "seconds": seconds}


def benchmark(args, p: float, cleanlab) -> list[dict]:
    run, train_seconds = train_limit(args, p)
    t0 = time.perf_counter()
    summary = detect(run, top=args.top, batch_size=args.batch_size, progress=False, device=args.device,
                     split="train")
    limit_seconds = train_seconds + time.perf_counter() - t0
    out = run_outputs(run, args.batch_size, args.device)  # training rows
    corrupted = out.corrupted
    rows = [{"route": f"{args.method} β={args.beta}: ‖e_ỹ − s(q)‖, flag argmax f ≠ ỹ",
             "flagged": summary["num_flagged"], **summary["flagged"], "auroc": summary["auroc"][summary["score"]],
             "seconds": limit_seconds}]

    t0 = time.perf_counter()
    issues = cleanlab.filter.find_label_issues(out.labels, out.probs_f, n_jobs=1)
    rows.append(evaluate_flagged(f"{args.method} in-sample probs + cleanlab", issues,
                                 1 - out.probs_f[np.arange(len(out.labels)), out.labels], corrupted,
                                 limit_seconds + time.perf_counter() - t0))

    for epochs in args.cv_epochs:
        probs, labels, cv_seconds = cross_validated_probs(args, p, epochs)
        if not np.array_equal(labels, out.labels):
            raise SystemExit(f"p={p}: the CV route's noisy labels differ from the LIMIT run's; this is a bug")
        t0 = time.perf_counter()
        issues = cleanlab.filter.find_label_issues(labels, probs, n_jobs=1)
        quality = cleanlab.rank.get_label_quality_scores(labels, probs)  # self-confidence: out-of-sample p_ỹ
        rows.append(evaluate_flagged(f"{args.folds}-fold CV CE ({epochs} ep) + cleanlab", issues, 1 - quality,
                                     corrupted, cv_seconds + time.perf_counter() - t0))
    for r in rows:
        r.update(p=p, n=len(out.labels), num_corrupted=int(corrupted.sum()))
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| noise p | N (corrupted) | route | flagged | precision | recall | F1 | AUROC | compute (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['p']} | {r['n']} ({r['num_corrupted']}) | {r['route']} | {r['flagged']} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['auroc']:.3f} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ (else $LIMITLAB_DATA, else ~/.cache/limitlab)")
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--noise-rates", type=float, nargs="+", default=[0.2, 0.5], help="uniform noise rates p")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="limit-l", choices=["limit-l", "limit-g"])
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--epochs", type=int, default=60, help="LIMIT: maximum epochs")
    ap.add_argument("--patience", type=int, default=20, help="LIMIT: early-stopping patience on noisy validation")
    ap.add_argument("--train-eval-every", type=int, default=0,
                    help="LIMIT: training-set memorization pass every k epochs (0: off, saves time)")
    ap.add_argument("--test-every", type=int, default=1000,
                    help="LIMIT: test pass every k epochs (it always runs at a new best and the last epoch)")
    ap.add_argument("--folds", type=int, default=5, help="CV route: number of folds")
    ap.add_argument("--cv-epochs", type=int, nargs="+", default=[10],
                    help="CV route: fixed CE epochs per fold (several values: one CV route each)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--top", type=int, default=64, help="detect(): k of precision@k and the suspects grid")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    if args.folds < 2:
        ap.error("--folds must be at least 2")
    if min(args.cv_epochs) < 1:
        ap.error("--cv-epochs must be at least 1")
    cleanlab = import_cleanlab()
    rows = []
    for p in args.noise_rates:
        rows += benchmark(args, p, cleanlab)
    text = table(rows)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
