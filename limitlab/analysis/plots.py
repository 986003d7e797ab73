"""Every figure limitlab draws, as PNG bytes: the memorization curves, the report's accuracy-vs-noise
and training-curve panels, and the grid of label-error suspects. Plots need matplotlib
(``pip install 'limitlab[plots]'``); it is imported only when a plot is drawn."""

from __future__ import annotations

import io
from pathlib import Path

from .. import rundir
from ..errors import LimitlabError
from .tables import Row, row_order, selected_text


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LimitlabError("plots need matplotlib: pip install 'limitlab[plots]' (or pip install matplotlib)") from None
    return plt


def _png(fig, plt) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _panel_title(dataset, train_size, kind=None) -> str:
    size = "all" if train_size is None else train_size
    return f"{dataset}, n={size}" + (f", {kind} noise" if kind else "")


def _colors(labels):
    import matplotlib

    labels = sorted(labels)
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def memorization_plot(curves: dict[str, list[dict]], title: str) -> bytes:
    """PNG with panels over epochs, one line per run: training accuracy on the noisy labels, clean
    test accuracy (epochs without a test pass are skipped), and the information lower bound."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    panels = (("train_noisy_accuracy", "training accuracy on noisy labels", "fit to the noisy training labels"),
              ("test_accuracy", "clean test accuracy", "accuracy on the clean test set"),
              ("info_lower_bound_bits", "label-noise information in weights ≥ (bits/example)",
               "label noise held in the weights"))
    for ax, (key, label, panel_title) in zip(axes, panels):
        ax.set_title(panel_title)
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


def suspects_grid(images, titles: list[str], columns: int = 8, heading: str | None = None,
                  colors: list[str] | None = None) -> bytes:
    """PNG of a grid of images with a title each (label-error suspects: "given → predicted").

    ``images``: uint8 [n, C, H, W] (a tensor or array; C = 1 grayscale, or 3 RGB), n >= 1, in the
    order to show (row by row, ``columns`` per row). ``heading``: a line above the grid; ``colors``:
    one title colour per image.
    """
    import numpy as np

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0 or len(titles) != len(images):
        raise ValueError(f"need uint8 images [n>=1, 1 or 3, H, W] and one title each, got {images.shape} "
                         f"and {len(titles)} titles")
    plt = _pyplot()
    cols = min(columns, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.7 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.flat:
        ax.axis("off")
    colors = colors or ["black"] * len(images)
    if heading:
        fig.suptitle(heading, fontsize=9)
    for ax, image, title, color in zip(axes.flat, images, titles, colors):
        if image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(title, fontsize=8, color=color)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def accuracy_vs_noise_plot(rows: list[Row]) -> bytes:
    """PNG: clean test accuracy (best-validation epoch) against the noise rate, one line per method with
    ± std error bars, one panel per (dataset, training-set size, noise kind)."""
    plt = _pyplot()
    rows = [r for r in rows if r.test_accuracy_mean is not None and r.noise_rate is not None]
    panels: dict[tuple, list[dict]] = {}
    for r in rows:
        panels.setdefault((r.dataset, r.train_size, r.noise_kind), []).append(r)
    n = max(1, len(panels))
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows), squeeze=False, constrained_layout=True)
    labels = {r.label for r in rows}
    colors = _colors(labels)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no complete runs", ha="center", va="center")
    for ax, (key, members) in zip(axes.flat, sorted(panels.items(), key=lambda kv: row_order(kv[1][0]))):
        lines: dict[str, list[dict]] = {}
        for r in members:
            lines.setdefault(r.label, []).append(r)
        for label, rs in sorted(lines.items(), key=lambda kv: row_order(kv[1][0])):
            rs = sorted(rs, key=lambda r: r.noise_rate)
            ax.errorbar([r.noise_rate for r in rs], [r.test_accuracy_mean for r in rs],
                        yerr=[r.test_accuracy_std or 0.0 for r in rs], label=label, marker="o", capsize=3,
                        linewidth=1.4, color=colors[label])
        ax.set_title(_panel_title(*key))
        ax.set_xlabel("noise rate")
        ax.set_ylabel("clean test accuracy (best val epoch)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return _png(fig, plt)


def _mean_curve(histories: list[list[dict]], key: str) -> tuple[list[int], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for rows in histories:
        for r in rows:
            if r.get(key) is not None:
                by_epoch.setdefault(r["epoch"], []).append(r[key])
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]


def _sparse(histories: list[list[dict]], key: str) -> bool:
    """Whether some run has ``key`` at some epochs but not at others."""
    return any(len({h.get(key) is None for h in rows}) == 2 for rows in histories)


def selected_curves_plot(rows: list[Row]) -> bytes:
    """PNG: training curves of the selected runs of each row (mean over its seeds per epoch): accuracy on
    the noisy training labels, clean test accuracy and the information lower bound; one row of panels per
    (dataset, training-set size, noise), one line per method. A measurement taken only at some epochs
    (the test pass without ``--test-every``) is drawn as each run's points instead of a line."""
    plt = _pyplot()
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.runs:
            groups.setdefault((r.dataset, r.train_size, r.noise), []).append(r)
    panels = (("train_noisy_accuracy", "train acc on noisy labels"), ("test_accuracy", "clean test accuracy"),
              ("info_lower_bound_bits", "label-noise info in weights ≥ (bits)"))
    nrows = max(1, len(groups))
    fig, axes = plt.subplots(nrows, 3, figsize=(15, 3.6 * nrows), squeeze=False, constrained_layout=True)
    if not groups:
        for ax in axes.flat:
            ax.axis("off")
        axes[0][1].text(0.5, 0.5, "no complete runs", ha="center", va="center")
    colors = _colors({r.label for r in rows})
    for axrow, (key, members) in zip(axes, sorted(groups.items(), key=lambda kv: row_order(kv[1][0]))):
        for r in members:
            label = r.label
            histories = []
            for path in r.runs:
                histories.append(rundir.read_metrics(Path(path)))
            text = label + (f" ({selected_text(r)})" if r.selected else "")
            for ax, (metric, _) in zip(axrow, panels):
                if _sparse(histories, metric):
                    # e.g. the test accuracy of runs tested only at new best epochs and the last one
                    # (the default): each run's points, as a mean over seeds would mix different epochs
                    points = [(h["epoch"], h[metric]) for rows_ in histories for h in rows_ if h.get(metric) is not None]
                    ax.plot(*zip(*points), linestyle="none", marker=".", label=text, color=colors[label])
                    continue
                epochs, values = _mean_curve(histories, metric)
                if epochs:
                    ax.plot(epochs, values, label=text, linewidth=1.3, color=colors[label])
        for ax, (metric, ylabel) in zip(axrow, panels):
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            if metric != "info_lower_bound_bits":
                ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
        axrow[0].set_title(f"{key[0]}, n={'all' if key[1] is None else key[1]}, {key[2]}", loc="left")
        axrow[1].legend(fontsize=7, loc="best")
    return _png(fig, plt)
