"""Label-error detection from a finished run (docs/method.md §8): a score per training example for how likely
its given label is wrong, a ranked file of suspects, and, when the corruption mask is known
(synthetic noise), AUROC and precision/recall of the scores against it.

Library use::

    from limitlab.analysis.detect import detect
    summary = detect("runs/x")            # writes label_errors.csv, detection.json, suspects.png

Scores (see :func:`limitlab.analysis.scores.label_issues`): ``classifier_disagreement`` = 1 − s(f)_ỹ
and ``classifier_margin`` = (1 − (s(f)_ỹ − max_{k≠ỹ} s(f)_k)) / 2 for any run;
``limit_gradient_mismatch`` = ‖ĝ − g‖₂ = ‖e_ỹ − s(q)‖₂ for runs with a q-network (LIMIT);
``averaged_disagreement`` / ``averaged_margin`` the same of the classifier's softmax averaged over
the run's epochs, for runs that kept it (``epoch_probs.npz``, :class:`~limitlab.epoch_probs.EpochProbs`).
Training rows are scored in-sample; LIMIT's classifier never sees the labels and its q-network is
kept from fitting wrong ones, so their training-set outputs are close to out-of-sample predictions.
Validation and test rows are scored out-of-sample, from the best checkpoint.
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
from .scores import SCORES, LabelIssues, label_issues, read_epoch_probs  # noqa: F401  (label_issues: public here too)

LABEL_ERRORS, DETECTION, SUSPECTS = rundir.LABEL_ERRORS, rundir.DETECTION, rundir.SUSPECTS
GRID_MAX = 64  # at most 8 × 8 images in suspects.png


SPLITS = ("train", "validation", "test")
SHORT = {"train": "train", "validation": "val", "test": "test"}  # in suspects.png's titles


@dataclass
class RunOutputs:
    """A run's best-checkpoint softmax outputs on the rows of the splits asked for (training rows
    first, then validation, then test), with what they are scored against. Training rows are
    in-sample (the networks trained on them); validation and test rows are out-of-sample."""

    config: Config
    data: RunData
    split: np.ndarray               # [N] "train", "validation" or "test"
    position: np.ndarray            # [N] the row's position within its split of ``data``
    index: np.ndarray               # [N] position in the official training set (train, validation) or test set
    labels: np.ndarray              # [N] the given labels (noisy for train, and validation unless clean)
    corrupted: np.ndarray | None    # [N] bool corruption mask (test rows: False); None when unknown (noise "none")
    probs_f: np.ndarray             # [N, K] classifier softmax
    probs_q: np.ndarray | None      # [N, K] q-network softmax (LIMIT runs), else None
    probs_avg: np.ndarray | None = None  # [N, K] training rows: s(f) averaged over epochs (epoch_probs.npz); others: s(f)
    averaged_over: str | None = None     # which epochs probs_avg averages
    file_row: np.ndarray | None = None  # [N] the row in the user's file (table:FILE datasets)
    row_key: np.ndarray | None = None   # [N] the row's value in the table's --id-column
    files: list | None = None       # [N] image files (streamed datasets)

    def images(self, rows: np.ndarray) -> torch.Tensor | None:
        """The stored images of ``rows`` (None for streamed datasets)."""
        parts = {"train": self.data.train, "validation": self.data.val, "test": self.data.test}
        if any(parts[self.split[i]].images is None for i in rows):
            return None
        return torch.stack([parts[self.split[i]].images[int(self.position[i])].cpu() for i in rows])


def _split_rows(data: RunData, name: str, noise_known: bool) -> dict:
    """Per-row arrays of one split (see RunOutputs), before prediction."""
    record = data.record
    split = {"train": data.train, "validation": data.val, "test": data.test}[name]
    n = 0 if split is None else len(split)
    if name == "train":
        index, labels, corrupted = record["train_index"], record["train_noisy"], record["train_corrupted"]
        file_row, key = record.get("train_file_row"), record.get("train_row_key")
    elif name == "validation":
        index = record["val_index"] if len(record["val_index"]) == n else np.arange(n)  # own validation set
        labels, corrupted, file_row = record["val_labels"], record["val_corrupted"], record.get("val_file_row")
        key = record.get("val_row_key")
    else:  # the published test labels: untouched by the synthetic noise
        index, labels, corrupted = np.arange(n), split.labels.cpu().numpy(), np.zeros(n, dtype=bool)
        file_row, key = record.get("test_file_row"), record.get("test_row_key")
    return dict(row_key=None if key is None else np.asarray(key, dtype=object),split=split, index=np.asarray(index, dtype=np.int64), labels=np.asarray(labels, dtype=np.int64),
                corrupted=np.asarray(corrupted, dtype=bool) if noise_known else None,
                file_row=None if file_row is None else np.asarray(file_row, dtype=np.int64))


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
            keys = ["train_index", "train_noisy"] + [k for k in ("val_index", "val_labels") if k in saved.files]
            same = all(np.array_equal(saved[k], data.record[k]) for k in keys)
    except Exception as e:  # a truncated or foreign .npz: zipfile, numpy and KeyError all apply
        raise LimitlabError(f"{path} is truncated or corrupt ({type(e).__name__}); "
                            "it is not a complete limitlab run directory") from None
    if not same:
        raise LimitlabError(f"the labels rebuilt from {config.dataset} (seed {config.seed}) differ from "
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
                progress: bool = False, data_dir: str | Path | None = None,
                splits: tuple[str, ...] = ("train",)) -> RunOutputs:
    """Load a run's config and best checkpoint, rebuild its data (same seed: same split and noisy
    labels, checked against noisy_labels.npz) and return the softmax outputs of its classifier, and
    of its q-network when it has one, in eval mode on the rows of ``splits`` (of :data:`SPLITS`).

    ``require_q``: raise LimitlabError when the run has no q-network (before predicting anything).
    ``data_dir``: where the data are now (default: the run's saved data_dir if it still exists,
    else $LIMITLAB_DATA, else ~/.cache/limitlab).
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise LimitlabError(f"unknown split {bad[0] if bad else 'none'!r}; choose train, validation, test or all")
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
    parts = [(name, _split_rows(data, name, config.noise != "none")) for name in SPLITS if name in splits]
    parts = [(name, p) for name, p in parts if p["split"] is not None and len(p["split"])]
    if not parts:
        raise LimitlabError(f"{run} has no {' or '.join(splits)} rows to score; choose another --split")
    if progress:
        print("detect: predicting on " + ", ".join(f"{len(p['split'])} {name}" for name, p in parts) + " examples",
              file=sys.stderr, flush=True)

    def proba(model):  # eval mode, no gradient: the rows' labels never reach the networks here
        return np.concatenate([predict(model, data, p["split"], batch_size=batch_size, runtime=runtime,
                                       proba=True).cpu().numpy() for _, p in parts])

    def joined(key):
        if any(p[key] is None for _, p in parts):
            return None
        return np.concatenate([p[key] for _, p in parts])

    probs_f = proba(objective.classifier)
    probs_avg, averaged_over = _averaged(run, data, q_network is not None, probs_f) if parts[0][0] == "train" \
        else (None, None)
    files = None
    if all(p["split"].files is not None for _, p in parts):
        files = [f for _, p in parts for f in p["split"].files]
    return RunOutputs(config=config, data=data,
                      split=np.concatenate([np.full(len(p["split"]), name, dtype=object) for name, p in parts]),
                      position=np.concatenate([np.arange(len(p["split"])) for _, p in parts]),
                      index=joined("index"), labels=joined("labels"), corrupted=joined("corrupted"),
                      probs_f=probs_f, probs_q=None if q_network is None else proba(q_network),
                      probs_avg=probs_avg, averaged_over=averaged_over, file_row=joined("file_row"), files=files,
                      row_key=joined("row_key"))


def _averaged(run: Path, data: RunData, has_q: bool, probs_f: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """``probs_f`` with its training rows (the first ones) replaced by the classifier's softmax averaged
    over the epochs, when the run kept them (epoch_probs.npz): over all epochs for LIMIT runs, whose
    classifier never fits the labels, and up to the best epoch for the others, which memorize after it
    (benchmarks/detection_scores.py)."""
    path = run / rundir.EPOCH_PROBS
    if not path.exists():
        return None, None
    saved = read_epoch_probs(path)
    key = "f" if has_q else "f_to_best"
    n = len(data.train)
    if key not in saved or saved[key].shape != (n, probs_f.shape[1]):
        raise LimitlabError(f"{path} does not match the run's {n} training rows; delete it to score from the "
                            "best checkpoint alone")
    out = probs_f.copy()
    out[:n] = saved[key]
    return out, ("all epochs" if has_q else "the epochs up to the best one") + f" (file: {rundir.EPOCH_PROBS})"


def _measures(scores: dict, s: np.ndarray, flagged: np.ndarray, corrupted: np.ndarray, top: int) -> dict:
    """AUROC of every score, precision/recall@k (k = top and the number corrupted) and the flagged set's
    precision/recall/F1 against the corruption mask (NaN where a measure is undefined)."""
    n_err = int(corrupted.sum())
    at_k = {k: metrics.precision_recall_at_k(s, corrupted, k) for k in dict.fromkeys((top, n_err)) if k >= 1}
    return dict(num_corrupted=n_err, auroc={k: metrics.auroc(v, corrupted) for k, v in scores.items()},
                precision_at_k={str(k): p for k, (p, _) in at_k.items()},
                recall_at_k={str(k): rec for k, (_, rec) in at_k.items()},
                flagged=metrics.flagged_metrics(flagged, corrupted))


def _label_errors_csv(r: RunOutputs, issues: LabelIssues, order: np.ndarray) -> bytes:
    s, predicted, flagged = issues.score, issues.predicted, issues.is_label_issue
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    # is_label_issue / label_quality: cleanlab's column names and meaning (low quality = suspicious).
    header = ["rank", "split", "index", "given_label", "predicted_label", "score", "is_label_issue", "label_quality"]
    # tables: the row in the user's file, and the labels as the file writes them
    classes = r.data.record.get("class_names")
    table = r.file_row is not None and classes is not None
    key_name = r.config.id_column  # --id-column: each row's key, in a column of that name
    writer.writerow(header + ["is_corrupted"] * (r.corrupted is not None) + ["file"] * (r.files is not None)
                    + ["file_row", "given_class", "predicted_class"] * table + [key_name] * (r.row_key is not None))
    for rank, i in enumerate(order, 1):
        row = [rank, r.split[i], int(r.index[i]), int(r.labels[i]), int(predicted[i]), f"{s[i]:.6g}",
               bool(flagged[i]), f"{issues.label_quality[i]:.6g}"]
        if r.corrupted is not None:
            row.append(int(r.corrupted[i]))
        if r.files is not None:
            row.append(r.files[i])
        if table:
            row += [int(r.file_row[i]), classes[r.labels[i]], classes[predicted[i]]]
        if r.row_key is not None:
            row.append(r.row_key[i])
        writer.writerow(row)
    return buf.getvalue().encode()


def _suspects_png(r: RunOutputs, issues: LabelIssues, order: np.ndarray, top: int, summary: dict) -> bytes | None:
    """The top suspects' grid, or None with summary["note"] saying why not."""
    shown = order[:min(top, GRID_MAX, len(order))]
    first = r.data.train.images
    if first is not None and first.dtype != torch.uint8:
        summary["note"] = f"no {SUSPECTS}: the data are rows of features, not images"
        return None
    images = r.images(shown) if len(shown) else None
    if images is None:
        summary["note"] = (f"no {SUSPECTS}: this dataset's images are streamed from files; "
                           f"the 'file' column of {LABEL_ERRORS} names each suspect's image")
        return None
    mixed = len(set(r.split[shown])) > 1 or r.split[shown[0]] != "train"
    titles = [f"{r.labels[i]} → {issues.predicted[i]}" + (f" {SHORT[r.split[i]]}" if mixed else "") for i in shown]
    heading = f"top {len(shown)} suspects by {issues.score_name}, ranked; titles: given → predicted label"
    if mixed:
        heading += " and split"
    colors = None
    if r.corrupted is not None:  # synthetic noise: the false alarms (label was right) in red
        heading += "; red: the given label was in fact correct"
        colors = ["black" if r.corrupted[i] else "red" for i in shown]
    try:
        return plots.suspects_grid(images, titles, heading=heading, colors=colors)
    except LimitlabError as e:  # no matplotlib: the ranked file and metrics are still written
        summary["note"] = f"no {SUSPECTS}: {e}"
        return None


def detect(run_dir: str | Path, score: str = "auto", top: int = 64, out: str | Path | None = None,
           batch_size: int = 256, progress: bool = True, device: str = "auto",
           data_dir: str | Path | None = None, split: str = "all") -> dict:
    """Rank a run's examples by how likely their label is wrong, and write the results.

    Args:
        run_dir: a `limitlab train` run directory (needs config.json, noisy_labels.npz and
            checkpoints/best.pt; the data is rebuilt from the dataset files, so they must be unchanged).
        score: "auto" (see :func:`limitlab.analysis.scores.auto_score`) or one of
            :data:`limitlab.analysis.scores.SCORES` (the gradient mismatch needs a LIMIT run, the
            averaged scores a run with epoch_probs.npz).
        top: k of precision@k / recall@k, and how many top suspects suspects.png shows (at most 64).
        out: folder for the files (default: the run directory).
        batch_size: evaluation batch size.
        progress: print what it is doing to stderr.
        device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N".
        data_dir: where the run's data are now; default: the data_dir saved with the run if it
            still exists, else $LIMITLAB_DATA, else ~/.cache/limitlab.
        split: which rows to score: "train" (in-sample: the run trained on them), "validation" or
            "test" (out-of-sample: the best checkpoint predicts rows it never trained on), or "all".

    Writes (atomically) into ``out``:
        label_errors.csv: rank, split (train / validation / test), index (the position in the
            dataset's official training set for train and validation rows, in its test set for
            test rows), given_label, predicted_label (the classifier's; averaged over the epochs for
            the averaged scores), score, is_label_issue
            (True when the prediction differs from the given label) and label_quality (in [0, 1],
            low = suspicious: cleanlab's columns, see :func:`limitlab.metrics.label_quality`), and
            is_corrupted (when known; test labels are never corrupted by synthetic noise); file
            (streamed datasets); file_row, given_class and predicted_class (table:FILE datasets: the
            row in the file, 0-based without the header, and the labels as the file writes them);
            ranked by score over all the scored rows, highest first.
        detection.json: the score used, the splits scored, N, the number flagged (predicted label ≠
            given label) and, when the corruption mask is known (noise ≠ none): AUROC of every
            available score, precision@k and recall@k for k = top and k = the number of corrupted
            examples, and precision/recall/F1 of the flagged set, over all scored rows and per split
            (under "splits").
        suspects.png: the top suspects' images titled "given → predicted" (and the split when rows
            other than training ones are shown; skipped, with a note in detection.json, for tables
            and datasets streamed from image files).

    Returns:
        The contents of detection.json.
    """
    if score not in ("auto", *SCORES):
        raise LimitlabError(f"unknown score {score!r}; choose auto, {', '.join(SCORES)}")
    if split not in ("all", *SPLITS):
        raise LimitlabError(f"unknown split {split!r}; choose train, validation, test or all")
    if top < 1:
        raise LimitlabError(f"top must be at least 1, not {top}")
    run = Path(run_dir)
    out = Path(out) if out is not None else run
    rundir.check_output_dir(out, "--out")
    r = run_outputs(run, batch_size, device, require_q=score == "limit_gradient_mismatch", progress=progress,
                    data_dir=data_dir, splits=SPLITS if split == "all" else (split,))
    issues = label_issues(r.probs_f, r.labels, r.probs_q, score, probs_avg=r.probs_avg)
    name, s, scores, flagged = issues.score_name, issues.score, issues.scores, issues.is_label_issue
    order = np.argsort(-s, kind="stable")
    scored = [part for part in SPLITS if part in set(r.split)]

    summary = {"run": str(run), "method": r.config.method, "dataset": r.config.dataset, "noise": r.config.noise,
               "score": name, "scores_available": list(scores), "averaged_over": r.averaged_over,
               "splits_scored": scored, "n": len(s), "top": top,
               "num_flagged": int(flagged.sum()), "flagged_rule": "predicted label != given label"}
    if r.corrupted is not None:
        summary.update(_measures(scores, s, flagged, r.corrupted, top))
    per_split = {}
    for part in scored:
        rows = r.split == part
        per_split[part] = {"n": int(rows.sum()), "num_flagged": int(flagged[rows].sum()),
                           "in_sample": part == "train"}
        if r.corrupted is not None:
            per_split[part].update(_measures({k: v[rows] for k, v in scores.items()}, s[rows], flagged[rows],
                                              r.corrupted[rows], top))
    summary["splits"] = per_split
    rundir.atomic_write_bytes(out / LABEL_ERRORS, _label_errors_csv(r, issues, order))
    png = _suspects_png(r, issues, order, top, summary)
    if png is not None:
        rundir.atomic_write_bytes(out / SUSPECTS, png)
    summary["suspects_png"] = SUSPECTS if png is not None else None
    rundir.write_json(out / DETECTION, summary)
    if progress:
        print(f"detect: wrote {LABEL_ERRORS}, {DETECTION}" + (f", {SUSPECTS}" if png is not None else "")
              + f" to {out}", file=sys.stderr, flush=True)
    return summary
