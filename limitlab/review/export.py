"""The corrections a review produced: a label vector over the dataset's official training set (what
``limitlab train --noise labels:FILE`` reads; −1 = leave the example out), a corrected copy of a
table run's file, and a summary of the decisions (and, where the true labels are known, how many
were right)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .. import rundir
from ..errors import LimitlabError
from .state import WITH_LABEL, Decisions

VECTOR_SUFFIXES = (".npy", ".csv", ".txt")
TABLE_SUFFIXES = (".csv", ".parquet")


def label_after(decision: dict | None, given: int) -> int:
    """The label an example ends with: the decided one, −1 when excluded, else the given one."""
    if decision is None:
        return int(given)
    if decision["decision"] in WITH_LABEL:
        return int(decision["label"])
    return -1 if decision["decision"] == "exclude" else int(given)


def summarize(keys: list, given: np.ndarray, true: np.ndarray | None, decisions: Decisions) -> dict:
    """Counts of each standing decision over the suspects ``keys``; with ``true`` labels, how many
    decisions were right: accept/relabel set the true label, keep kept a true label, exclude removed
    a wrong one (unsure is not judged)."""
    counts = {d: 0 for d in ("accept", "keep", "relabel", "exclude", "unsure")}
    right = judged = changed = 0
    for i, key in enumerate(keys):
        d = decisions.get(key)
        if d is None:
            continue
        counts[d["decision"]] += 1
        after = label_after(d, given[i])
        changed += after != given[i]
        if true is not None and d["decision"] != "unsure":
            judged += 1
            right += (given[i] != true[i]) if after == -1 else (after == true[i])
    out = {"suspects": len(keys), "decided": sum(counts.values()), "counts": counts, "changed": int(changed)}
    if true is not None:
        out.update(judged=int(judged), right=int(right),
                   wrong_labels_in_suspects=int((np.asarray(given) != np.asarray(true)).sum()))
    return out


def summary_line(s: dict) -> str:
    """One line of :func:`summarize`'s counts, for the terminal."""
    parts = [f"{s['decided']} of {s['suspects']} suspects decided"]
    parts += [f"{n} {d}" for d, n in s["counts"].items() if n]
    if "judged" in s:
        parts.append(f"{s['right']} of {s['judged']} decisions right (true labels known)")
    return "; ".join(parts)


def run_label_vector(run: Path, decisions: Decisions, data_dir=None) -> np.ndarray:
    """The labels for the dataset's official training set after the review: the decided labels where a
    decision stands (−1 for excluded examples), the labels the run trained on (and validated with) for
    its other examples, and the dataset's labels (or the run's label file's) elsewhere."""
    import dataclasses

    from .. import noise
    from ..config import Config
    from ..data import load_dataset, resolve_data_dir

    config = Config.load(run / rundir.CONFIG)
    saved = config.data_dir
    where = data_dir if data_dir is not None else (saved if saved and Path(saved).expanduser().exists() else None)
    config = dataclasses.replace(config, data_dir=None if where is None else str(where))
    data = load_dataset(config.dataset, config.data_dir, options={"label_column": config.label_column})
    given = np.asarray(data.train_labels if hasattr(data, "train_files") else data.train_labels.numpy())
    labels = given.astype(np.int64).copy()
    if noise.split_spec(config.noise)[0] == "labels":
        labels = noise.noisy_labels(config.noise, given, data.num_classes, config.seed,
                                    search=(resolve_data_dir(config.data_dir),))[0].astype(np.int64)
    with np.load(run / rundir.NOISY_LABELS, allow_pickle=False) as rec:
        labels[rec["train_index"]] = rec["train_noisy"]
        if not config.clean_validation and "val_index" in rec and "val_labels" in rec:
            labels[rec["val_index"]] = rec["val_labels"]
    for (split, index), d in decisions.standing.items():
        if split in ("train", "validation"):
            labels[index] = label_after(d, labels[index])
    return labels


def write_vector(path: Path, labels: np.ndarray) -> None:
    """Write a label vector atomically: ``.npy`` (int64), else text with a ``label`` header line."""
    if path.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.asarray(labels, dtype=np.int64))
        data = buf.getvalue()
    else:
        data = ("label\n" + "\n".join(str(int(v)) for v in labels) + "\n").encode()
    rundir.atomic_write_bytes(path, data)


def corrected_table(frame, label_column: str, class_names: list, file_rows: dict, decisions: Decisions):
    """A copy of the user's table with the decided labels written in (as the file writes its labels)
    and the excluded rows dropped. ``file_rows``: (split, index) -> row of the file."""
    out = frame.copy()
    column = out[label_column]
    drop = []
    for key, d in decisions.standing.items():
        row = file_rows.get(key)
        if row is None:
            continue
        if d["decision"] == "exclude":
            drop.append(row)
        elif d["decision"] in WITH_LABEL:
            value = class_names[int(d["label"])]
            if column.dtype.kind in "iu":
                value = int(value)
            elif column.dtype.kind == "f":
                value = float(value)
            out.iloc[row, out.columns.get_loc(label_column)] = value
    return out.drop(index=out.index[sorted(drop)])


def export_run(run, out, data_dir=None) -> dict:
    """``limitlab review RUN --export FILE``: write the corrections of RUN's review to ``out`` and return
    the summary. ``.npy``/``.txt`` (and ``.csv`` for image runs): the label vector; for table runs
    ``.csv``/``.parquet``: the corrected copy of the table (never over the input file)."""
    from ..config import Config
    from .source import read_label_errors

    run, out = Path(run), Path(out)
    if not (run / rundir.CONFIG).exists():
        raise LimitlabError(f"{run} has no {rundir.CONFIG}; give the --out folder of a `limitlab train` run")
    if not (run / rundir.LABEL_ERRORS).exists():
        raise LimitlabError(f"{run} has no {rundir.LABEL_ERRORS} and no review yet; run `limitlab review {run}` first")
    config = Config.load(run / rundir.CONFIG)
    table_run = config.dataset.startswith("table:")
    suffix = out.suffix.lower()
    allowed = TABLE_SUFFIXES + (".npy", ".txt") if table_run else VECTOR_SUFFIXES
    if suffix not in allowed:
        raise LimitlabError(f"--export {out}: the file must end in {', '.join(allowed)}")
    if out.is_dir():
        raise LimitlabError(f"--export {out} is a folder; give a file name")
    rundir.check_output_dir(out.parent if str(out.parent) else Path("."), "--export")
    decisions = Decisions(run / "review" / "decisions.jsonl")
    errors = read_label_errors(run / rundir.LABEL_ERRORS)
    keys = list(zip(errors["split"].tolist(), errors["index"].tolist()))
    true = None
    if config.noise != "none":
        with np.load(run / rundir.NOISY_LABELS, allow_pickle=False) as rec:
            true_of = {("train", int(i)): int(t) for i, t in zip(rec["train_index"], rec["train_true"])}
            true_of.update({("validation", int(i)): int(t) for i, t in zip(rec["val_index"], rec["val_true"])})
        if all(k in true_of for k in keys):
            true = np.array([true_of[k] for k in keys])
    summary = summarize(keys, errors["given"], true, decisions)
    if table_run and suffix in TABLE_SUFFIXES:
        from .source import _read_user_table

        source = Path(config.dataset.split(":", 1)[1]).expanduser()
        if out.resolve() == source.resolve():
            raise LimitlabError(f"--export {out} is the run's input table; write the corrected copy to another file")
        frame = _read_user_table(config.dataset)
        if frame is None or "file_row" not in errors:
            raise LimitlabError(f"{run} was trained on a .npz table, which has no rows to copy; export .npy labels")
        with np.load(run / rundir.NOISY_LABELS, allow_pickle=False) as rec:
            names = [str(c) for c in rec["class_names"]]
        rows = dict(zip(keys, errors["file_row"].tolist()))
        table = corrected_table(frame, config.label_column or "label", names, rows, decisions)
        buf = io.BytesIO()
        if suffix == ".csv":
            table.to_csv(buf, index=False)
        else:
            table.to_parquet(buf, index=False)
        rundir.atomic_write_bytes(out, buf.getvalue())
        summary.update(export=str(out), rows=len(table), dropped=len(frame) - len(table),
                       retrain=f"limitlab train --dataset table:{out} --label-column {config.label_column or 'label'} "
                               f"--seed {config.seed} --method {config.method} --out RUN2")
    else:
        labels = run_label_vector(run, decisions, data_dir)
        write_vector(out, labels)
        summary.update(export=str(out), labels=len(labels), excluded=int((labels < 0).sum()),
                       retrain=f"limitlab train --dataset {config.dataset} --noise labels:{out} "
                               f"--seed {config.seed} --method {config.method} --out RUN2"
                               + (f" --train-size {config.train_size}" if config.train_size else ""))
    return summary
