"""Would a shorter early-stopping patience have picked the same epoch? Replays early stopping on
finished runs.

For every run directory under DIR (``summary.json`` + ``metrics.jsonl``), the per-epoch validation
accuracies are replayed with patience P: the run would have stopped after P epochs without a new
best, and reported the test accuracy of the best epoch up to there. A run's epochs before it stops
do not depend on the patience (same seed, same computation), so this is exactly what a run with
patience P would have reported. Prints, per patience, how many runs pick the same best epoch as
recorded, and lists the others with both test accuracies.

    python benchmarks/patience_check.py benchmarks/out/mnist1000 --patience 20 30 50
"""

from __future__ import annotations

import argparse
import sys

from limitlab import rundir
from limitlab.analysis.runs import collect_runs
from limitlab.errors import LimitlabError


def replay(history: list[dict], patience: int) -> dict:
    """The epoch record (epoch, val_accuracy, test_accuracy) early stopping with ``patience`` picks."""
    best, bad = None, 0
    for row in history:
        if best is None or row["val_accuracy"] > best["val_accuracy"]:
            best, bad = row, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="a folder of run directories (searched recursively)")
    ap.add_argument("--patience", type=int, nargs="+", required=True, help="patience values to replay")
    args = ap.parse_args()
    if min(args.patience) < 1:
        ap.error("--patience values must be at least 1")
    try:
        runs = [r for r in collect_runs(args.dir) if r.complete]
    except LimitlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not runs:
        print(f"no finished run directories under {args.dir}", file=sys.stderr)
        return 1
    for patience in args.patience:
        same, changed = 0, []
        for run in runs:
            summary = run.summary
            pick = replay(rundir.read_metrics(run.path), patience)
            if pick["epoch"] == summary["best_epoch"]:
                same += 1
            else:
                changed.append((run.name, summary["best_epoch"], summary["test_accuracy"], pick["epoch"],
                                pick["test_accuracy"]))
        print(f"patience {patience}: {same} of {len(runs)} runs pick the recorded best epoch")
        for name, epoch, acc, new_epoch, new_acc in changed:
            print(f"  {name}: best epoch {epoch} (test {acc:.3f}) -> {new_epoch} (test {new_acc:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
