"""Multi-run studies of the paper, each one command (``limitlab study NAME``).

memorization (docs/method.md §9, the paper's first figure): MNIST, 80% uniform noise, the 4-layer MLP,
no early stopping, clean validation; CE, CE + dropout, CE + weight decay and LIMIT_L. It writes
one run directory per method; ``limitlab study`` then writes ``memorization.csv`` (the curves and the
information lower bound per epoch) and ``memorization.png`` (limitlab.analysis.report.write_study).
"""

from __future__ import annotations

from pathlib import Path

from .. import rundir
from ..config import Config
from ..train import train


def run_study(configs: dict[str, Config], out: str | Path, progress: bool = True) -> tuple[dict, dict]:
    """Train each config into ``out/<key>`` (complete runs are kept, interrupted ones resumed).
    Returns (summaries, run directories), by key; :func:`limitlab.analysis.report.write_study` draws
    the study's curves from the run directories."""
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
    return summaries, runs
