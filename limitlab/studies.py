"""Multi-run studies of the paper, each one command (``limitlab study NAME``).

memorization (SPEC §9, the paper's first figure): MNIST, 80% uniform noise, the 4-layer MLP,
no early stopping, clean validation; CE, CE + dropout, CE + weight decay and LIMIT_L. It writes
one run directory per method, ``memorization.csv`` (the curves and the information lower bound per
epoch) and ``memorization.png`` (training accuracy on the noisy labels and clean test accuracy).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import report, rundir
from .config import Config
from .train import train


def memorization_configs(epochs: int = 400, train_size: int | None = None, data_dir: str | None = None,
                         seed: int = 0, dropout: float = 0.5, weight_decay: float = 1e-4, beta: float = 10.0,
                         dataset: str = "mnist", noise: str = "uniform:0.8") -> dict[str, Config]:
    base = Config(dataset=dataset, data_dir=data_dir, noise=noise, train_size=train_size, model="mlp",
                  method="ce", epochs=epochs, patience=None, clean_validation=True, seed=seed)
    return {
        "ce": base,
        f"ce+dropout{dropout:g}": dataclasses.replace(base, dropout=dropout),
        f"ce+weight-decay{weight_decay:g}": dataclasses.replace(base, weight_decay=weight_decay),
        f"limit-l beta{beta:g}": dataclasses.replace(base, method="limit-l", beta=beta),
    }


def run_study(configs: dict[str, Config], out: str | Path, name: str, title: str, progress: bool = True) -> dict:
    """Train each config into ``out/<key>`` (complete runs are kept, interrupted ones resumed), then
    write ``out/<name>.csv`` and ``out/<name>.png``. Returns the summaries."""
    out = Path(out)
    summaries, runs = {}, {}
    for key, config in configs.items():
        run = out / key.replace(" ", "_")
        runs[key] = run
        if (run / rundir.SUMMARY).exists() and Config.load(run / rundir.CONFIG) == config:
            summaries[key] = rundir.read_json(run / rundir.SUMMARY)
            continue
        resume = (run / rundir.CONFIG).exists() and Config.load(run / rundir.CONFIG) == config
        summaries[key] = train(config, run, resume=resume, overwrite=not resume, progress=progress)
    curves = report.read_curves(runs)
    rundir.atomic_write_bytes(out / f"{name}.csv", report.curves_csv(curves))
    rundir.atomic_write_bytes(out / f"{name}.png", report.memorization_plot(curves, title))
    return summaries
