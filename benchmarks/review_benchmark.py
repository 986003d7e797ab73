"""limitlab review, measured: a scripted reviewer drives the page in Chromium and answers with the true
label for the top-k suspects; then the export, the realised noise of the exported labels, and LIMIT's
test accuracy retrained on them against before the review. Also the page timings (first card after
the page request; decision to next card, in the page).

    python benchmarks/review_benchmark.py --dataset digits --epochs 30 --k 100 500 --out /tmp/rb
    python benchmarks/review_benchmark.py --dataset mnist --train-size 10000 --epochs 10 --k 100 500 --out /tmp/rb
    python benchmarks/review_benchmark.py --timing-only RUN    # page timings over an existing run

Prints one JSON object per k (and writes them to OUT/results.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from limitlab import rundir
from limitlab.analysis.detect import detect
from limitlab.config import Config
from limitlab.review.export import export_run
from limitlab.review.serve import Server
from limitlab.review.server import Review
from limitlab.review.source import from_run
from limitlab.review.state import Decisions
from limitlab.train import train

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def browser():
    from playwright.sync_api import sync_playwright

    p = sync_playwright().start()
    return p, p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)


def page_timings(run: Path, decisions_to_time: int = 20) -> dict:
    """Server start (data + cached outputs), first card after the page request, and in-page decision →
    next card times (the reviewer marks each 'unsure' on a copy of the decisions, then they are removed)."""
    t = time.perf_counter()
    data = from_run(run, progress=False)
    load = time.perf_counter() - t
    log = run / "review" / "timing-decisions.jsonl"
    log.unlink(missing_ok=True)
    server = Server(Review(data, Decisions(log)), port=0).start()
    p, b = browser()
    try:
        page = b.new_page(viewport={"width": 1280, "height": 860})
        page.goto(server.url)
        page.wait_for_selector("body[data-card]")
        t = time.perf_counter()
        page.goto(server.url.split("?")[0])
        page.wait_for_selector("body[data-card]")
        first = time.perf_counter() - t
        for _ in range(decisions_to_time):
            i = int(page.evaluate("() => document.body.dataset.card"))
            page.wait_for_timeout(150)
            page.keyboard.press("n")
            page.wait_for_selector(f"body[data-card='{i + 1}']")
        page.wait_for_timeout(100)
        steps = page.evaluate("() => S.timings")
    finally:
        b.close()
        p.stop()
        server.stop()
        server.join(5)
        log.unlink(missing_ok=True)
    return {"suspects": len(data.index), "server_load_s": round(load, 2), "first_card_s": round(first, 3),
            "decision_to_next_card_ms": {"median": round(statistics.median(steps), 1), "max": round(max(steps), 1),
                                         "n": len(steps)}}


def scripted_review(run: Path, k: int) -> dict:
    """Answer the top-k suspects in the browser with their true labels: Q when the given label is
    right, W when the suggestion is, else the class's number on the card (or '/' + its name)."""
    data = from_run(run, progress=False)
    (run / "review" / "decisions.jsonl").unlink(missing_ok=True)
    review = Review(data, Decisions(run / "review" / "decisions.jsonl"))
    server = Server(review, port=0).start()
    p, b = browser()
    k = min(k, len(data.index))
    try:
        page = b.new_page(viewport={"width": 1280, "height": 860})
        page.goto(server.url)
        t = time.perf_counter()
        for i in range(k):
            page.wait_for_selector(f"body[data-card='{i}']")
            true, given, suggested = int(data.true[i]), int(data.given[i]), int(data.suggested[i])
            if true == given:
                page.keyboard.press("q")
            elif true == suggested:
                page.keyboard.press("w")
            else:
                choices = [int(c) for c in data.top[i]]
                if true in choices[:9]:
                    page.keyboard.press(str(choices.index(true) + 1))
                else:
                    page.keyboard.press("/")
                    page.keyboard.type(data.class_names[true])
                    page.keyboard.press("Enter")
        page.wait_for_selector(f"body[data-card='{k}']") if k < len(data.index) else None
        page.evaluate("() => S.queue")
        seconds = time.perf_counter() - t
    finally:
        b.close()
        p.stop()
        server.stop()
        server.join(5)
    summary = review.summary()
    return {"k": k, "reviewed_that_were_errors": round(float(np.mean(data.given[:k] != data.true[:k])), 4),
            "decided": summary["decided"], "right": summary["right"], "browser_seconds": round(seconds, 1)}


def realised_noise(run: Path, labels: np.ndarray) -> tuple[float, float]:
    """(noise rate of the run's training labels, of the exported labels on the same examples, excluded left out)."""
    with np.load(run / rundir.NOISY_LABELS) as rec:
        index, noisy, true = rec["train_index"], rec["train_noisy"], rec["train_true"]
    after = labels[index]
    kept = after >= 0
    return float(np.mean(noisy != true)), float(np.mean(after[kept] != true[kept]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--noise", default="uniform:0.3")
    ap.add_argument("--k", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/review-benchmark")
    ap.add_argument("--timing-only", default=None, metavar="RUN")
    args = ap.parse_args()
    if args.timing_only:
        print(json.dumps(page_timings(Path(args.timing_only)), indent=2))
        return
    out = Path(args.out) / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    base = dict(dataset=args.dataset, train_size=args.train_size, epochs=args.epochs, seed=args.seed,
                method="limit-l", device="cpu")
    run = out / "before"
    if not (run / rundir.SUMMARY).exists():
        train(Config(noise=args.noise, **base), run, overwrite=True, progress=False)
    if not (run / rundir.LABEL_ERRORS).exists():
        detect(run, progress=False)
    before = json.loads((run / rundir.SUMMARY).read_text())
    results = {"config": {**base, "noise": args.noise}, "test_acc_before": before.get("test_accuracy"),
               "final_test_acc_before": before.get("final_test_accuracy"),
               "timings": page_timings(run), "reviews": []}
    print(json.dumps(results, indent=2), flush=True)
    for k in args.k:
        r = scripted_review(run, k)
        labels_path = out / f"labels_k{k}.npy"
        export = export_run(run, labels_path)
        labels = np.load(labels_path)
        r["noise_before"], r["noise_after"] = (round(x, 4) for x in realised_noise(run, labels))
        r["excluded"] = export["excluded"]
        retrain = out / f"after_k{k}"
        summary = train(Config(noise=f"labels:{labels_path}", **base), retrain, overwrite=True, progress=False)
        r["test_acc_after"] = summary.get("test_accuracy")
        r["final_test_acc_after"] = summary.get("final_test_accuracy")
        results["reviews"].append(r)
        print(json.dumps(r), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
