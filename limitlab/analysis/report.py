"""``limitlab report``: the tables and plots of a folder of runs, written next to them; and the files
of a multi-run study (``limitlab study``)."""

from __future__ import annotations

from pathlib import Path

from .. import rundir
from ..errors import LimitlabError
from . import plots
from .runs import collect_runs, curves_csv, read_curves
from .tables import aggregate, default_select, table_csv, table_markdown


def write_report(root: str | Path, out: str | Path | None = None, preset=None) -> dict[str, Path]:
    """Collect the runs under ``root`` and write ``report.md``, ``report.csv``, ``accuracy_vs_noise.png``
    and ``curves.png`` into ``out`` (default: ``root``), atomically. With ``preset`` (a name, a JSON grid
    file or a Preset) the hyperparameters selected are that preset's, and missing runs are marked. A ``root``
    without runs is a LimitlabError, before anything is written."""
    root = Path(root)
    out = Path(out) if out is not None else root
    select = default_select()
    if preset is not None:
        from ..experiments.presets import load_grid

        preset = load_grid(preset)
        select = preset.select
    runs = collect_runs(root)
    if not runs:
        raise LimitlabError(f"{root} holds no runs (no folder under it has a {rundir.CONFIG} with a {rundir.METRICS} "
                            f"or {rundir.SUMMARY}); give the folder that limitlab train --out or sweep --out wrote into")
    rows = aggregate(runs, select=select, preset=preset)
    complete = sum(r.complete for r in runs)
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
    rundir.atomic_write_bytes(paths["accuracy_vs_noise.png"], plots.accuracy_vs_noise_plot(rows))
    rundir.atomic_write_bytes(paths["curves.png"], plots.selected_curves_plot(rows))
    return paths


def write_study(out: str | Path, name: str, runs: dict[str, Path], title: str) -> dict[str, Path]:
    """A study's curves: ``out/<name>.csv`` (one row per run and epoch) and ``out/<name>.png`` (training
    accuracy on the noisy labels, clean test accuracy and the information bound over epochs)."""
    out = Path(out)
    curves = read_curves(runs)
    paths = {"csv": out / f"{name}.csv", "png": out / f"{name}.png"}
    rundir.atomic_write_bytes(paths["csv"], curves_csv(curves))
    rundir.atomic_write_bytes(paths["png"], plots.memorization_plot(curves, title))
    return paths
