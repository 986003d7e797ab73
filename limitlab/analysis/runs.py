"""Run directories read back: every run under a folder (complete or partial), with its config,
summary and per-epoch curves."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import rundir
from ..config import Config
from ..errors import LimitlabError


@dataclass
class RunRecord:
    """One run directory found under a root.

    ``name`` is its path relative to the root; ``config`` the config dict (with defaults for fields
    an older version did not write); ``summary`` None for a partial run; ``epochs`` the epochs in
    metrics.jsonl (partial runs only)."""

    path: Path
    name: str
    config: dict
    summary: dict | None
    complete: bool
    epochs: int | None = None


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


def _config_dict(saved: dict) -> dict:
    defaults = Config().to_dict()
    return {**defaults, **{k: v for k, v in saved.items() if k in defaults}}


def collect_runs(root: str | Path) -> list[RunRecord]:
    """Every run directory under ``root`` (at any depth; hidden folders skipped): complete runs (config.json
    and summary.json) and partial ones (config.json and metrics.jsonl, no summary yet).

    """
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
        runs.append(RunRecord(path, path.relative_to(root).as_posix() if path != root else path.name,
                              config, summary, complete, epochs))
    return runs
