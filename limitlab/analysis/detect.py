"""Label-error detection from a finished run (docs/method.md §8): a score per training example for how likely
its given label is wrong, a ranked file of suspects, and, when the corruption mask is known
(synthetic noise), AUROC and precision/recall of the scores against it.

Library use::

    from limitlab.analysis.detect import detect
    summary = detect("runs/x")            # writes label_errors.csv, detection.json, suspects.png

Scores (see :func:`limitlab.metrics.label_error_scores`): ``classifier_disagreement`` = 1 − s(f)_ỹ
for any run; ``limit_gradient_mismatch`` = ‖ĝ − g‖₂ = ‖e_ỹ − s(q)‖₂ for runs with a q-network
(LIMIT). Because LIMIT's classifier never sees the labels and its q-network is kept from fitting
wrong ones, their training-set outputs are close to out-of-sample predictions: no cross-validation
is needed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import metrics, rundir
from ..config import Config
from ..data import table_run
from ..data.run import RunData, prepare_data
from ..errors import LimitlabError, first_line
from ..methods import METHODS
from ..runtime import Runtime, resolve_device
from ..train import build_run_objective, predict
from . import plots

SCORES = ("classifier_disagreement", "limit_gradient_mismatch")
LABEL_ERRORS, DETECTION, SUSPECTS = rundir.LABEL_ERRORS, rundir.DETECTION, rundir.SUSPECTS
GRID_MAX = 64  # at most 8 × 8 images in suspects.png


@dataclass
class RunOutputs:
    """A run's best-checkpoint softmax outputs on its training split, with what they are scored against."""

    config: Config
    data: RunData
    index: np.ndarray               # [N] positions in the official training set (noisy_labels.npz train_index)
    labels: np.ndarray              # [N] the given (noisy) labels
    corrupted: np.ndarray | None    # [N] bool corruption mask; None when unknown (noise "none": real labels)
    probs_f: np.ndarray             # [N, K] classifier softmax
    probs_q: np.ndarray | None      # [N, K] q-network softmax (LIMIT runs), else None


def _rebuild_config(config: Config, run: Path) -> Config:
    """The run's config with the other runs it was started from replaced by the run itself: the
    networks only need the right architecture here (the checkpoint overwrites their weights), so
    the run stays readable when its --init-from / --q-init-from / --transition sources have moved.
    FW estimates its T (which only its loss uses) from this run's own best classifier."""
    changes: dict = {"init_from": None}
    if config.q_init_from:
        changes["q_init_from"] = str(run)   # keeps q's "+" architecture (the classifier's)
    if METHODS.get(config.method).prepare is not None:  # e.g. FW: re-estimate T from this run's classifier
        changes.update(init_from=str(run), transition=None)
    return dataclasses.replace(config, **changes)


def _check_labels(run: Path, config: Config, data: RunData) -> None:
    path = run / rundir.NOISY_LABELS
    if not path.exists():
        raise LimitlabError(f"{run} has no {rundir.NOISY_LABELS}; it is not a complete limitlab run directory")
    try:
        with np.load(path, allow_pickle=False) as saved:
            same = (np.array_equal(saved["train_index"], data.record["train_index"])
                    and np.array_equal(saved["train_noisy"], data.record["train_noisy"]))
    except Exception as e:  # a truncated or foreign .npz: zipfile, numpy and KeyError all apply
        raise LimitlabError(f"{path} is truncated or corrupt ({type(e).__name__}); "
                            "it is not a complete limitlab run directory") from None
    if not same:
        raise LimitlabError(f"the training labels rebuilt from {config.dataset} (seed {config.seed}) differ from "
                            f"those the run saved in {path}: the data files changed since it was trained; "
                            "point detect --data-dir at the original files to score this run")


def _data_dir(saved: str | None, given: str | Path | None) -> str | None:
    """Where detect reads the run's data: ``given`` (--data-dir), else the run's saved data_dir when
    it still exists, else None ($LIMITLAB_DATA, then ~/.cache/limitlab: see resolve_data_dir)."""
    if given is not None:
        return str(given)
    if saved is not None and Path(saved).expanduser().exists():
        return saved
    return None


def run_outputs(run_dir: str | Path, batch_size: int = 256, device: str = "auto", require_q: bool = False,
                progress: bool = False, data_dir: str | Path | None = None) -> RunOutputs:
    """Load a run's config and best checkpoint, rebuild its data (same seed: same split and noisy
    labels, checked against noisy_labels.npz) and return the softmax outputs of its classifier, and
    of its q-network when it has one, on the training split in eval mode.

    ``require_q``: raise LimitlabError when the run has no q-network (before predicting anything).
    ``data_dir``: where the data are now (default: the run's saved data_dir if it still exists,
    else $LIMITLAB_DATA, else ~/.cache/limitlab).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise LimitlabError(f"run directory {run} does not exist; give the --out folder of a `limitlab train` run")
    if not (run / rundir.CONFIG).exists():
        raise LimitlabError(f"{run} has no {rundir.CONFIG}; give the --out folder of a `limitlab train` run")
    if not (run / rundir.BEST).exists():
        raise LimitlabError(f"{run} has no {rundir.BEST} (no epoch has finished yet); train it first, "
                            f"or continue it with `limitlab train --out {run} --resume`")
    config = Config.load(run / rundir.CONFIG)
    config = dataclasses.replace(config, data_dir=_data_dir(config.data_dir, data_dir))
    runtime = Runtime(resolve_device(device))
    if progress:
        print(f"detect: rebuilding the data of {run} ({config.dataset}, noise {config.noise}, seed {config.seed})",
              file=sys.stderr, flush=True)
    data = prepare_data(config, runtime.device, run_dir=run)
    _check_labels(run, config, data)
    if progress and data.table is not None:
        table_run.show(data.table)
    objective, _ = build_run_objective(_rebuild_config(config, run), data, runtime)
    q_network = getattr(objective, "q_network", None)
    if require_q and q_network is None:
        raise LimitlabError(f"the score limit_gradient_mismatch needs a LIMIT run (one with a q-network), but {run} "
                            f"was trained with --method {config.method}; use classifier_disagreement or auto")
    ckpt = rundir.load_checkpoint(run / rundir.BEST, map_location=runtime.device, keys=("objective",))
    try:
        objective.load_state_dict(ckpt["objective"])
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as e:
        raise LimitlabError(f"{run / rundir.BEST} does not hold the objective of the run's config "
                            f"({first_line(e)}); retrain the run") from None
    if progress:
        print(f"detect: predicting on {len(data.train)} training examples", file=sys.stderr, flush=True)

    def proba(model):
        return predict(model, data, data.train, batch_size=batch_size, runtime=runtime, proba=True).cpu().numpy()

    record = data.record
    return RunOutputs(config=config, data=data, index=np.asarray(record["train_index"]),
                      labels=np.asarray(record["train_noisy"]),
                      corrupted=None if config.noise == "none" else np.asarray(record["train_corrupted"], dtype=bool),
                      probs_f=proba(objective.classifier), probs_q=None if q_network is None else proba(q_network))


@dataclass
class LabelIssues:
    """Per-example label-issue results in cleanlab's convention (see :func:`label_issues`)."""

    score_name: str                 # which score of metrics.label_error_scores ranks the examples
    score: np.ndarray               # [N] higher = more suspect
    label_quality: np.ndarray       # [N] in [0, 1], low = suspicious (metrics.label_quality)
    predicted: np.ndarray           # [N] the classifier's predicted class
    is_label_issue: np.ndarray      # [N] bool: the prediction differs from the given label
    scores: dict                    # every available score, by name


def label_issues(probs_f: np.ndarray, labels: np.ndarray, probs_q: np.ndarray | None = None,
                 score: str = "auto") -> LabelIssues:
    """Score and flag each example's given label, from a classifier's (and LIMIT's q-network's) outputs.

    Parameters
    ----------
    probs_f : np.ndarray, shape (N, K)
        The classifier's softmax s(f).
    labels : np.ndarray, shape (N,)
        The given labels ỹ, integers in [0, K).
    probs_q : np.ndarray, shape (N, K), optional
        LIMIT's q-network softmax s(q).
    score : str
        "auto" (limit_gradient_mismatch when ``probs_q`` is given, else classifier_disagreement) or
        one of :data:`SCORES`.

    Returns
    -------
    LabelIssues
        Flagged: the classifier's prediction differs from the given label (LIMIT's classifier never
        sees the labels, so no cross-validation is needed for this to be out-of-sample-like).
    """
    scores = metrics.label_error_scores(probs_f, labels, probs_q)
    name = score if score != "auto" else ("limit_gradient_mismatch" if probs_q is not None
                                          else "classifier_disagreement")
    if name not in scores:
        raise LimitlabError(f"the score {name} is not available here; choose one of {', '.join(scores)}")
    predicted = np.asarray(probs_f).argmax(1)
    return LabelIssues(score_name=name, score=scores[name], label_quality=metrics.label_quality(scores[name], name),
                       predicted=predicted, is_label_issue=predicted != np.asarray(labels), scores=scores)


def detect(run_dir: str | Path, score: str = "auto", top: int = 64, out: str | Path | None = None,
           batch_size: int = 256, progress: bool = True, device: str = "auto",
           data_dir: str | Path | None = None) -> dict:
    """Rank a run's training examples by how likely their label is wrong, and write the results.

    Args:
        run_dir: a `limitlab train` run directory (needs config.json, noisy_labels.npz and
            checkpoints/best.pt; the data is rebuilt from the dataset files, so they must be unchanged).
        score: "auto" (limit_gradient_mismatch for runs with a q-network, i.e. LIMIT, else
            classifier_disagreement), "classifier_disagreement" (1 − s(f)_ỹ) or
            "limit_gradient_mismatch" (‖e_ỹ − s(q)‖₂; LIMIT runs only).
        top: k of precision@k / recall@k, and how many top suspects suspects.png shows (at most 64).
        out: folder for the files (default: the run directory).
        batch_size: evaluation batch size.
        progress: print what it is doing to stderr.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N".
        data_dir: where the run's data are now; default: the data_dir saved with the run if it
            still exists, else $LIMITLAB_DATA, else ~/.cache/limitlab.

    Writes (atomically) into ``out``:
        label_errors.csv: rank, index (into the official training set), given_label, predicted_label
            (the classifier's), score, is_label_issue (True when the prediction differs from the
            given label) and label_quality (in [0, 1], low = suspicious: cleanlab's columns, see
            :func:`limitlab.metrics.label_quality`), and is_corrupted (when known); file (streamed
            datasets); file_row, given_class and predicted_class (table:FILE datasets: the row in
            the file, 0-based without the header, and the labels as the file writes them); ranked
            by score, highest first.
        detection.json: the score used, N, the number flagged (predicted label ≠ given label) and,
            when the corruption mask is known (noise ≠ none): AUROC of every available score,
            precision@k and recall@k for k = top and k = the number of corrupted examples, and
            precision/recall/F1 of the flagged set.
        suspects.png: the top suspects' images titled "given → predicted" (skipped, with a note in
            detection.json, for datasets streamed from image files).

    Returns:
        The contents of detection.json.
    """
    if score not in ("auto", *SCORES):
        raise LimitlabError(f"unknown score {score!r}; choose auto, {' or '.join(SCORES)}")
    if top < 1:
        raise LimitlabError(f"top must be at least 1, not {top}")
    run = Path(run_dir)
    out = Path(out) if out is not None else run
    rundir.check_output_dir(out, "--out")
    r = run_outputs(run, batch_size, device, require_q=score == "limit_gradient_mismatch", progress=progress,
                    data_dir=data_dir)
    issues = label_issues(r.probs_f, r.labels, r.probs_q, score)
    name, s, scores, predicted, flagged = (issues.score_name, issues.score, issues.scores, issues.predicted,
                                           issues.is_label_issue)
    order = np.argsort(-s, kind="stable")

    summary = {"run": str(run), "method": r.config.method, "dataset": r.config.dataset, "noise": r.config.noise,
               "score": name, "scores_available": list(scores), "n": len(s), "top": top,
               "num_flagged": int(flagged.sum()), "flagged_rule": "predicted label != given label"}
    if r.corrupted is not None:
        n_err = int(r.corrupted.sum())
        at_k = {k: metrics.precision_recall_at_k(s, r.corrupted, k) for k in dict.fromkeys((top, n_err)) if k >= 1}
        summary.update(
            num_corrupted=n_err,
            auroc={k: metrics.auroc(v, r.corrupted) for k, v in scores.items()},
            precision_at_k={str(k): p for k, (p, _) in at_k.items()},
            recall_at_k={str(k): rec for k, (_, rec) in at_k.items()},
            flagged=metrics.flagged_metrics(flagged, r.corrupted))

    files = r.data.train.files
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # is_label_issue / label_quality: cleanlab's column names and meaning (low quality = suspicious).
    header = ["rank", "index", "given_label", "predicted_label", "score", "is_label_issue", "label_quality"]
    # tables: the row in the user's file, and the labels as the file writes them
    file_rows, classes = r.data.record.get("train_file_row"), r.data.record.get("class_names")
    table = file_rows is not None and classes is not None
    keys, key_name = r.data.record.get("train_row_key"), r.config.id_column  # --id-column: each row's key
    writer.writerow(header + ["is_corrupted"] * (r.corrupted is not None) + ["file"] * (files is not None)
                    + ["file_row", "given_class", "predicted_class"] * table + [key_name] * (keys is not None))
    for rank, i in enumerate(order, 1):
        row = [rank, int(r.index[i]), int(r.labels[i]), int(predicted[i]), f"{s[i]:.6g}",
               bool(flagged[i]), f"{issues.label_quality[i]:.6g}"]
        if r.corrupted is not None:
            row.append(int(r.corrupted[i]))
        if files is not None:
            row.append(files[i])
        if table:
            row += [int(file_rows[i]), classes[r.labels[i]], classes[predicted[i]]]
        if keys is not None:
            row.append(keys[i])
        writer.writerow(row)
    rundir.atomic_write_bytes(out / LABEL_ERRORS, buf.getvalue().encode())

    shown = order[:min(top, GRID_MAX, len(order))]
    if r.data.train.images is not None and r.data.train.images.dtype != torch.uint8:
        summary["suspects_png"] = None
        summary["note"] = f"no {SUSPECTS}: the data are rows of features, not images"
    elif r.data.train.images is None:
        summary["suspects_png"] = None
        summary["note"] = (f"no {SUSPECTS}: this dataset's images are streamed from files; "
                           f"the 'file' column of {LABEL_ERRORS} names each suspect's image")
    elif len(shown):
        idx = torch.as_tensor(shown, device=r.data.train.images.device)
        titles = [f"{r.labels[i]} → {predicted[i]}" for i in shown]
        try:
            heading = f"top {len(shown)} suspects by {name}, ranked; titles: given → predicted label"
            colors = None
            if r.corrupted is not None:  # synthetic noise: the false alarms (label was right) in red
                heading += "; red: the given label was in fact correct"
                colors = ["black" if r.corrupted[i] else "red" for i in shown]
            png = plots.suspects_grid(r.data.train.images[idx].cpu(), titles, heading=heading, colors=colors)
        except LimitlabError as e:  # no matplotlib: the ranked file and metrics are still written
            summary["suspects_png"], summary["note"] = None, f"no {SUSPECTS}: {e}"
        else:
            rundir.atomic_write_bytes(out / SUSPECTS, png)
            summary["suspects_png"] = SUSPECTS
    rundir.write_json(out / DETECTION, summary)
    if progress:
        print(f"detect: wrote {LABEL_ERRORS}, {DETECTION}" + (f", {SUSPECTS}" if summary.get("suspects_png") else "")
              + f" to {out}", file=sys.stderr, flush=True)
    return summary
