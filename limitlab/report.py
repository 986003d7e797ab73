"""Tables (CSV/markdown) and plots (PNG) from run directories. Plots need matplotlib
(``pip install 'limitlab[plots]'``); it is imported only when a plot is drawn."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from . import rundir
from .errors import LimitlabError

CURVE_COLUMNS = ("epoch", "train_noisy_accuracy", "test_accuracy", "val_accuracy", "memorized_fraction",
                 "corrected_fraction", "info_lower_bound_bits")


def read_curves(runs: dict[str, Path]) -> dict[str, list[dict]]:
    """The per-epoch rows of each named run directory."""
    return {name: rundir.read_metrics(run) for name, run in runs.items()}


def curves_csv(curves: dict[str, list[dict]]) -> bytes:
    """One row per (run, epoch) with the columns of CURVE_COLUMNS."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(("run", *CURVE_COLUMNS))
    for name, rows in curves.items():
        for r in rows:
            writer.writerow((name, *("" if r.get(c) is None else r[c] for c in CURVE_COLUMNS)))
    return buf.getvalue().encode()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LimitlabError("plots need matplotlib: pip install 'limitlab[plots]' (or pip install matplotlib)") from None
    return plt


def memorization_plot(curves: dict[str, list[dict]], title: str) -> bytes:
    """PNG with panels over epochs, one line per run: training accuracy on the noisy labels, clean
    test accuracy (epochs without a test pass are skipped), and the information lower bound."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    panels = (("train_noisy_accuracy", "training accuracy on noisy labels"), ("test_accuracy", "clean test accuracy"),
              ("info_lower_bound_bits", "label-noise information in weights ≥ (bits/example)"))
    for ax, (key, label) in zip(axes, panels):
        for name, rows in curves.items():
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if points:
                ax.plot(*zip(*points), label=name, linewidth=1.6)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if key != "info_lower_bound_bits":
            ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[1].legend(loc="best")
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()
