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


# ---------------------------------------------------------------------------------- sweep reports
# Tables of a sweep (SPEC §7): one row per cell (dataset, noise, training-set size, method); within a
# cell the hyperparameter setting with the highest MEAN validation accuracy over seeds is selected, and
# the row reports mean ± std over those seeds of the test accuracy at the best-validation epoch.
SELECT = ("beta", "grad_noise", "gce_q", "lr", "penalty_lambda", "penalty_beta", "sample_lambda", "dropout",
          "weight_decay")
# Fields that do not change what a run learns; runs that differ only in them are the same setting.
_NUISANCE = ("device", "precision", "compile", "workers", "eval_batch_size", "test_every", "train_eval_every",
             "data_dir")
_CELL = ("dataset", "noise", "train_size", "method", "init_from", "q_init_from", "seed")
METHOD_ORDER = ("ce", "ce-gn", "mae", "gce", "fw", "dmi", "penalize", "limit-g", "limit-l")
TABLE_COLUMNS = ("dataset", "train_size", "noise", "method", "variant", "selected", "seeds",
                 "test_accuracy_mean", "test_accuracy_std", "final_train_noisy_accuracy_mean",
                 "final_train_noisy_accuracy_std", "best_val_accuracy_mean", "best_epochs", "settings", "note",
                 "runs")


def _config_dict(saved: dict) -> dict:
    from .config import Config

    defaults = Config().to_dict()
    return {**defaults, **{k: v for k, v in saved.items() if k in defaults}}


def collect_runs(root: str | Path) -> list[dict]:
    """Every run directory under ``root`` (at any depth; hidden folders skipped): complete runs (config.json
    and summary.json) and partial ones (config.json and metrics.jsonl, no summary yet).

    Each run is a dict: ``path`` (Path), ``name`` (its path relative to root), ``config`` (dict, with
    defaults for fields an older version did not write), ``summary`` (dict or None), ``complete`` (bool),
    ``epochs`` (epochs recorded in metrics.jsonl, partial runs only, else None)."""
    import json
    import os

    root = Path(root)
    if not root.is_dir():
        raise LimitlabError(f"{root} is not a folder of run directories")
    runs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if rundir.CONFIG not in filenames:
            continue
        dirnames[:] = []  # a run directory: its checkpoints/ hold no runs
        path = Path(dirpath)
        complete = rundir.SUMMARY in filenames
        if not complete and rundir.METRICS not in filenames:
            continue  # configured but never trained an epoch
        try:
            config = _config_dict(json.loads((path / rundir.CONFIG).read_text()))
            summary = json.loads((path / rundir.SUMMARY).read_text()) if complete else None
        except (OSError, ValueError):
            continue  # being written, or not a limitlab file: not a run we can report
        epochs = None if complete else len(rundir.read_metrics(path))
        runs.append({"path": path, "name": path.relative_to(root).as_posix() if path != root else path.name,
                     "config": config, "summary": summary, "complete": complete, "epochs": epochs})
    return runs


def _method_label(config: dict) -> str:
    label = config["method"] + ("+" if config.get("q_init_from") else "")
    if config.get("sample_lambda") is not None:
        label += " +S"
    if config.get("init_from") and config["method"] not in ("fw", "dmi"):
        label += " (from CE)"
    return label


def _keys(config: dict, select) -> tuple[tuple, tuple]:
    """(cell, setting): the cell is everything but the selected hyperparameters and the seed."""
    label = _method_label(config)
    protocol = tuple((k, config[k]) for k in sorted(config)
                     if k not in _CELL and k not in _NUISANCE and k not in select)
    cell = (config["dataset"], config["noise"], config["train_size"], label, protocol)
    setting = tuple((k, config[k]) for k in select)
    return cell, setting


def _noise_rate(noise: str) -> tuple[str, float | None]:
    kind, _, arg = noise.partition(":")
    if kind == "none":
        return kind, 0.0
    try:
        return kind, float(arg)
    except ValueError:
        return kind, None


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    import statistics

    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _fmt_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def aggregate(runs: list[dict], select=SELECT, preset=None) -> list[dict]:
    """One row per cell of the collected runs (and, with ``preset``, per cell the preset expects).

    Within a cell, runs are grouped by their values of the ``select`` fields; the group with the highest
    mean ``best_val_accuracy`` over its seeds is selected (SPEC §7: noisy validation, never the test set).
    Rows hold mean and sample std over those seeds of ``test_accuracy`` (at the best-validation epoch) and
    ``final_train_noisy_accuracy``, the selected setting, the seeds, and a ``note`` on missing runs: seeds
    of the selected setting missing from the preset (or, without one, from the seeds seen in the cell),
    other expected runs missing, and unfinished runs."""
    select = tuple(select)
    cells: dict[tuple, dict] = {}

    def cell_entry(cell):
        return cells.setdefault(cell, {"settings": {}, "partial": 0, "expected": {}, "seen_seeds": set()})

    for run in runs:
        cell, setting = _keys(run["config"], select)
        entry = cell_entry(cell)
        entry["seen_seeds"].add(run["config"]["seed"])
        if run["complete"]:
            entry["settings"].setdefault(setting, []).append(run)
        else:
            entry["partial"] += 1
    if preset is not None:
        from .sweep import expand

        for spec in expand(preset):
            config = spec.resolved_config(".").to_dict()
            cell, setting = _keys(config, select)
            cell_entry(cell)["expected"].setdefault(setting, set()).add(config["seed"])

    rows = []
    for cell, entry in cells.items():
        dataset, noise, train_size, label, protocol = cell
        kind, rate = _noise_rate(noise)
        row = {"dataset": dataset, "train_size": train_size, "noise": noise, "noise_kind": kind, "noise_rate": rate,
               "method": label, "protocol": dict(protocol), "variant": "", "selected": {}, "seeds": 0,
               "seed_list": [], "test_accuracy_mean": None, "test_accuracy_std": None,
               "final_train_noisy_accuracy_mean": None, "final_train_noisy_accuracy_std": None,
               "best_val_accuracy_mean": None, "best_epochs": [], "settings": len(entry["settings"]),
               "note": "", "runs": []}
        expected = entry["expected"]
        n_expected = sum(len(s) for s in expected.values())
        notes = []
        if entry["settings"]:
            def score(item):
                setting, group = item
                return (sum(r["summary"]["best_val_accuracy"] for r in group) / len(group), len(group))

            # max() keeps the first of equal scores; settings are sorted so that the choice is deterministic
            ordered = sorted(entry["settings"].items(), key=lambda item: _json_key(item[0]))
            setting, group = max(ordered, key=score)
            group = sorted(group, key=lambda r: r["config"]["seed"])
            summaries = [r["summary"] for r in group]
            # show the hyperparameters that vary in the cell (among the runs found or expected)
            tried = [dict(s) for s in (*entry["settings"], *expected)]
            row["selected"] = {k: v for k, v in setting if len({_json_key(t[k]) for t in tried}) > 1}
            row["seeds"] = len(group)
            row["seed_list"] = [r["config"]["seed"] for r in group]
            row["test_accuracy_mean"], row["test_accuracy_std"] = _mean_std([s["test_accuracy"] for s in summaries])
            row["final_train_noisy_accuracy_mean"], row["final_train_noisy_accuracy_std"] = _mean_std(
                [s["final_train_noisy_accuracy"] for s in summaries])
            row["best_val_accuracy_mean"] = _mean_std([s["best_val_accuracy"] for s in summaries])[0]
            row["best_epochs"] = [s.get("best_epoch") for s in summaries]
            row["runs"] = [str(r["path"]) for r in group]
            want = expected.get(setting) if expected else entry["seen_seeds"]
            if want:
                missing = len(set(want) - set(row["seed_list"]))
                if missing:
                    notes.append(f"missing {missing}/{len(want)} seeds")
            if expected:
                done = {(s, r["config"]["seed"]) for s, g in entry["settings"].items() for r in g}
                others = [(s, seed) for s, seeds in expected.items() if s != setting for seed in seeds]
                missing_other = sum((s, seed) not in done for s, seed in others)
                if missing_other:
                    notes.append(f"{missing_other}/{len(others)} runs of other settings missing")
        else:
            notes.append(f"missing: no complete runs (0/{n_expected})" if n_expected else "missing: no complete runs")
        if entry["partial"]:
            notes.append(f"{entry['partial']} unfinished")
        row["note"] = "; ".join(notes)
        rows.append(row)
    _label_variants(rows)
    rows.sort(key=_row_order)
    return rows


def _json_key(setting) -> str:
    import json

    return json.dumps(setting, sort_keys=True, default=str)


def _label_variants(rows: list[dict]) -> None:
    """Rows of one (dataset, noise, size, method) that differ in other settings say how."""
    from .config import Config

    defaults = Config().to_dict()
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["noise"], r["train_size"], r["method"]), []).append(r)
    for members in groups.values():
        if len(members) < 2:
            continue
        keys = sorted({k for r in members for k in r["protocol"]})
        differing = [k for k in keys if len({_json_key(r["protocol"].get(k)) for r in members}) > 1]
        for r in members:
            shown = [k for k in differing if r["protocol"].get(k) != defaults.get(k)]
            r["variant"] = " ".join(f"{k}={_fmt_value(r['protocol'].get(k))}" for k in shown)
        if len({r["variant"] for r in members}) < len(members):
            for r in members:
                r["variant"] = " ".join(f"{k}={_fmt_value(r['protocol'].get(k))}" for k in differing)


def _row_order(r: dict):
    method = r["method"].split("+")[0].split(" ")[0]
    rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
    size = float("inf") if r["train_size"] is None else r["train_size"]
    rate = -1.0 if r["noise_rate"] is None else r["noise_rate"]
    return (r["dataset"], size, r["noise_kind"], rate, r["noise"], rank, r["method"], r["variant"])


def _selected_text(r: dict) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in r["selected"].items())


def _pm(mean, std) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}")


def table_markdown(rows: list[dict]) -> str:
    """A markdown table: one line per cell, mean ± std over the seeds of the selected setting."""
    lines = ["| dataset | n | noise | method | selected | test acc (best val) | final train acc on noisy labels "
             "| val acc | seeds | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        method = r["method"] + (f" ({r['variant']})" if r["variant"] else "")
        val = "–" if r["best_val_accuracy_mean"] is None else f"{r['best_val_accuracy_mean']:.3f}"
        lines.append(f"| {r['dataset']} | {'all' if r['train_size'] is None else r['train_size']} | {r['noise']} | "
                     f"{method} | {_selected_text(r) or '-'} | "
                     f"{_pm(r['test_accuracy_mean'], r['test_accuracy_std'])} | "
                     f"{_pm(r['final_train_noisy_accuracy_mean'], r['final_train_noisy_accuracy_std'])} | "
                     f"{val} | {r['seeds']} | {r['note']} |")
    return "\n".join(lines) + "\n"


def table_csv(rows: list[dict]) -> bytes:
    """The rows as CSV (columns TABLE_COLUMNS; numbers unrounded, empty where missing)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_COLUMNS)
    for r in rows:
        out = []
        for c in TABLE_COLUMNS:
            v = r.get(c)
            if c == "selected":
                v = _selected_text(r)
            elif c in ("best_epochs", "runs"):
                v = ";".join(str(x) for x in v)
            elif c == "train_size":
                v = "all" if v is None else v
            out.append("" if v is None else v)
        writer.writerow(out)
    return buf.getvalue().encode()


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


def accuracy_vs_noise_plot(rows: list[dict]) -> bytes:
    """PNG: clean test accuracy (best-validation epoch) against the noise rate, one line per method with
    ± std error bars, one panel per (dataset, training-set size, noise kind)."""
    plt = _pyplot()
    rows = [r for r in rows if r["test_accuracy_mean"] is not None and r["noise_rate"] is not None]
    panels: dict[tuple, list[dict]] = {}
    for r in rows:
        panels.setdefault((r["dataset"], r["train_size"], r["noise_kind"]), []).append(r)
    n = max(1, len(panels))
    cols = min(3, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.0 * nrows), squeeze=False, constrained_layout=True)
    labels = {r["method"] + (f" {r['variant']}" if r["variant"] else "") for r in rows}
    colors = _colors(labels)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no complete runs", ha="center", va="center")
    for ax, (key, members) in zip(axes.flat, sorted(panels.items(), key=lambda kv: _row_order(kv[1][0]))):
        lines: dict[str, list[dict]] = {}
        for r in members:
            lines.setdefault(r["method"] + (f" {r['variant']}" if r["variant"] else ""), []).append(r)
        for label, rs in sorted(lines.items(), key=lambda kv: _row_order(kv[1][0])):
            rs = sorted(rs, key=lambda r: r["noise_rate"])
            ax.errorbar([r["noise_rate"] for r in rs], [r["test_accuracy_mean"] for r in rs],
                        yerr=[r["test_accuracy_std"] or 0.0 for r in rs], label=label, marker="o", capsize=3,
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


def selected_curves_plot(rows: list[dict], runs: list[dict] | None = None) -> bytes:
    """PNG: training curves of the selected runs of each row (mean over its seeds per epoch): accuracy on
    the noisy training labels, clean test accuracy and the information lower bound; one row of panels per
    (dataset, training-set size, noise), one line per method. A measurement taken only at some epochs
    (the test pass without ``--test-every``) is drawn as each run's points instead of a line."""
    plt = _pyplot()
    known = {str(r["path"]): r for r in (runs or [])}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["runs"]:
            groups.setdefault((r["dataset"], r["train_size"], r["noise"]), []).append(r)
    panels = (("train_noisy_accuracy", "train acc on noisy labels"), ("test_accuracy", "clean test accuracy"),
              ("info_lower_bound_bits", "label-noise info in weights ≥ (bits)"))
    nrows = max(1, len(groups))
    fig, axes = plt.subplots(nrows, 3, figsize=(15, 3.6 * nrows), squeeze=False, constrained_layout=True)
    if not groups:
        for ax in axes.flat:
            ax.axis("off")
        axes[0][1].text(0.5, 0.5, "no complete runs", ha="center", va="center")
    colors = _colors({r["method"] + (f" {r['variant']}" if r["variant"] else "") for r in rows})
    for axrow, (key, members) in zip(axes, sorted(groups.items(), key=lambda kv: _row_order(kv[1][0]))):
        for r in members:
            label = r["method"] + (f" {r['variant']}" if r["variant"] else "")
            histories = []
            for path in r["runs"]:
                run = known.get(path)
                histories.append(run["metrics"] if run and "metrics" in run else rundir.read_metrics(Path(path)))
            text = label + (f" ({_selected_text(r)})" if r["selected"] else "")
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


def write_report(root: str | Path, out: str | Path | None = None, preset=None) -> dict[str, Path]:
    """Collect the runs under ``root`` and write ``report.md``, ``report.csv``, ``accuracy_vs_noise.png``
    and ``curves.png`` into ``out`` (default: ``root``), atomically. With ``preset`` (a name, a JSON grid
    file or a Preset) the hyperparameters selected are that preset's, and missing runs are marked."""
    root = Path(root)
    out = Path(out) if out is not None else root
    select = SELECT
    if preset is not None:
        from .presets import load_grid

        preset = load_grid(preset)
        select = preset.select
    runs = collect_runs(root)
    rows = aggregate(runs, select=select, preset=preset)
    complete = sum(r["complete"] for r in runs)
    header = [f"# limitlab report: {root}", "",
              f"{complete} complete run(s), {len(runs) - complete} unfinished"
              + (f"; preset {preset.name}" if preset is not None else "") + ".",
              "Per cell, the hyperparameter setting with the highest mean validation accuracy over seeds is "
              f"selected (among: {', '.join(select) or 'none'}); test accuracy is the clean test accuracy at the "
              "best-validation epoch, mean ± std over the seeds of that setting.", ""]
    text = "\n".join(header) + "\n" + table_markdown(rows) + \
        "\n![test accuracy vs noise](accuracy_vs_noise.png)\n\n![training curves](curves.png)\n"
    paths = {"report.md": out / "report.md", "report.csv": out / "report.csv",
             "accuracy_vs_noise.png": out / "accuracy_vs_noise.png", "curves.png": out / "curves.png"}
    rundir.atomic_write_bytes(paths["report.md"], text.encode())
    rundir.atomic_write_bytes(paths["report.csv"], table_csv(rows))
    rundir.atomic_write_bytes(paths["accuracy_vs_noise.png"], accuracy_vs_noise_plot(rows))
    rundir.atomic_write_bytes(paths["curves.png"], selected_curves_plot(rows, runs))
    return paths
