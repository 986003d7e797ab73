"""What the review page shows, gathered once: the ranked suspects (from a run's label_errors.csv, or
from Python arrays), the classifier's top-3 classes for each, the examples themselves (image pixels
or feature rows) addressed by index, and penultimate-layer features for nearest neighbours."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import LimitlabError

SPLITS = ("train", "validation", "test")
TOP = 9  # the card lists up to 9 classes (keys 1-9), most probable first


@dataclass
class Pool:
    """The examples of one split: ``index`` as label_errors.csv writes it, their inputs (uint8 images
    [M, C, H, W], feature rows [M, D], or image files), given labels, softmax outputs and L2-normalised
    penultimate-layer features."""

    index: np.ndarray
    x: np.ndarray | None
    labels: np.ndarray
    probs: np.ndarray
    features: np.ndarray
    files: list | None = None
    _pos: dict = field(default_factory=dict, repr=False)

    def position(self, index: int) -> int:
        """The position in this pool of the example with ``index`` (KeyError when it has none)."""
        if not self._pos:
            self._pos.update(zip(self.index.tolist(), range(len(self.index))))
        pos = self._pos.get(int(index))
        if pos is None:
            raise KeyError(index)
        return pos


@dataclass
class ReviewData:
    """Suspects in rank order (one entry per row of label_errors.csv) and the pools they come from."""

    kind: str                       # "image" or "table"
    class_names: list
    index: np.ndarray               # [S] as in label_errors.csv
    split: np.ndarray               # [S] "train" / "validation" / "test"
    given: np.ndarray               # [S] given label ids
    score: np.ndarray               # [S] higher = more suspect
    flagged: np.ndarray             # [S] bool: the classifier predicts another class
    pools: dict                     # split -> Pool
    true: np.ndarray | None = None  # [S] true labels where the run knows them (synthetic noise)
    file_row: np.ndarray | None = None  # [S] row in the user's table (tables)
    table: object = None            # the user's table (a pandas DataFrame), tables only
    label_column: str | None = None
    feature_names: list = field(default_factory=list)
    title: str = ""
    top: np.ndarray = field(init=False)     # [S, <=9] classes, most probable first
    top_p: np.ndarray = field(init=False)   # [S, <=9] their probabilities

    def __post_init__(self):
        k = len(self.class_names)
        probs = np.zeros((len(self.index), k))
        for name, pool in self.pools.items():
            rows = np.flatnonzero(self.split == name)
            if len(rows):
                probs[rows] = pool.probs[[pool.position(i) for i in self.index[rows]]]
        n_top = min(TOP, k)
        self.top = np.argsort(-probs, axis=1, kind="stable")[:, :n_top]
        self.top_p = np.take_along_axis(probs, self.top, 1)

    @property
    def suggested(self) -> np.ndarray:
        """The most probable class other than the given one (what "accept" sets)."""
        other = np.where(self.top[:, 0] == self.given, self.top[:, 1 % self.top.shape[1]], self.top[:, 0])
        return other

    def key(self, i: int) -> tuple[str, int]:
        """Suspect ``i``'s (split, index): how decisions name it."""
        return str(self.split[i]), int(self.index[i])

    def example(self, split: str, index: int):
        """The input of one example (image [C, H, W] uint8 or feature row), by split and index."""
        pool = self.pools[split]
        pos = pool.position(index)
        if pool.x is not None:
            return pool.x[pos]
        from ..data.files import ImageFiles  # streamed image datasets: decode the one file

        return ImageFiles(*pool.files[pos])[0][0]


def _features_hook(model):
    """A forward hook on the model's last Linear layer that records its input (the penultimate features)."""
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    store: list = []
    if not linears:
        return store, None
    handle = linears[-1].register_forward_hook(lambda mod, inp, out: store.append(inp[0].detach().float().cpu()))
    return store, handle


def _predict_pool(model, data, split, batch_size: int, runtime):
    """(softmax [M, K], L2-normalised penultimate features [M, d]) of ``model`` on one split."""
    import torch

    from ..train import predict

    store, handle = _features_hook(model)
    try:
        probs = predict(model, data, split, batch_size=batch_size, runtime=runtime, proba=True).float().cpu().numpy()
    finally:
        if handle is not None:
            handle.remove()
    feats = torch.cat(store).flatten(1).numpy() if store and sum(len(s) for s in store) == len(probs) else probs
    return probs, normalise(feats)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` flattened and scaled to unit length (cosine similarity is then a dot product)."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def read_label_errors(path: Path) -> dict:
    """The columns of label_errors.csv as arrays (``split`` is "train" for files written without it)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LimitlabError(f"cannot read {path} ({type(e).__name__}); run `limitlab detect` again") from None
    if not rows or not {"index", "given_label", "score"} <= set(rows[0]):
        raise LimitlabError(f"{path} has no suspects or lacks the columns index, given_label and score; "
                            "run `limitlab detect` again")
    col = lambda name, kind=int: np.array([kind(r[name]) for r in rows])  # noqa: E731
    out = dict(index=col("index"), given=col("given_label"), score=col("score", float),
               split=np.array([r.get("split") or "train" for r in rows], dtype=object),
               flagged=np.array([r.get("is_label_issue", "True") == "True" for r in rows]))
    if "file_row" in rows[0]:
        out["file_row"] = col("file_row")
    bad = set(out["split"]) - set(SPLITS)
    if bad:
        raise LimitlabError(f"{path} has split values {sorted(bad)}; expected train, validation or test")
    return out


def from_run(run_dir, data_dir=None, device: str = "cpu", batch_size: int = 512, progress: bool = True) -> ReviewData:
    """Everything the page needs from a run directory that has label_errors.csv: the data rebuilt as the
    run saw it, and its best classifier's outputs and penultimate features on each split the file names.
    The outputs are cached in RUN/review/outputs.npz (keyed by the checkpoint's size and time)."""
    import dataclasses
    import sys

    import torch

    from .. import rundir
    from ..analysis import detect as detect_mod
    from ..config import Config
    from ..data.run import prepare_data
    from ..runtime import Runtime, resolve_device
    from ..train import build_run_objective

    run = Path(run_dir)
    errors = read_label_errors(run / rundir.LABEL_ERRORS)
    config = Config.load(run / rundir.CONFIG)
    saved = config.data_dir
    where = data_dir if data_dir is not None else (saved if saved and Path(saved).expanduser().exists() else None)
    config = dataclasses.replace(config, data_dir=None if where is None else str(where))
    runtime = Runtime(resolve_device(device))
    if progress:
        print(f"review: rebuilding the data of {run} ({config.dataset})", file=sys.stderr, flush=True)
    data = prepare_data(config, runtime.device, run_dir=run)  # a table run: its recorded file, checked
    rec = data.record
    with np.load(run / rundir.NOISY_LABELS, allow_pickle=False) as saved_labels:
        same = np.array_equal(saved_labels["train_noisy"], rec["train_noisy"])
    if not same:
        raise LimitlabError(f"the training labels rebuilt from {config.dataset} differ from those in {run}; "
                            "point --data-dir at the data the run was trained on")
    splits = {"train": (data.train, rec["train_index"]), "validation": (data.val, rec["val_index"])}
    if data.test is not None:
        splits["test"] = (data.test, np.arange(len(data.test)))
    wanted = [s for s in SPLITS if s in set(errors["split"]) or s == "train"]
    best = run / rundir.BEST
    cache = run / "review" / "outputs.npz"
    stamp = np.array([best.stat().st_size, best.stat().st_mtime_ns])
    outputs = {}
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as saved_outputs:
                if np.array_equal(saved_outputs["stamp"], stamp):
                    outputs = {s: (saved_outputs[f"{s}_probs"], saved_outputs[f"{s}_features"]) for s in wanted}
        except (OSError, ValueError, KeyError, EOFError):
            outputs = {}
    if not outputs:
        objective, _ = build_run_objective(detect_mod._rebuild_config(config, run), data, runtime)
        ckpt = rundir.load_checkpoint(best, map_location=runtime.device, keys=("objective",))
        objective.load_state_dict(ckpt["objective"])
        for s in wanted:
            if progress:
                print(f"review: predicting on the {len(splits[s][0])} examples of the {s} split", file=sys.stderr,
                      flush=True)
            outputs[s] = _predict_pool(objective.classifier, data, splits[s][0], batch_size, runtime)
        cache.parent.mkdir(exist_ok=True)
        arrays = {f"{s}_{k}": v for s, (p, f) in outputs.items() for k, v in (("probs", p), ("features", f))}
        rundir.atomic_write_bytes(cache, _npz_bytes(stamp=stamp, **arrays))
    pools = {}
    for s in wanted:
        split, index = splits[s]
        x = None if split.images is None else split.images.cpu().numpy()
        files = None
        if split.images is None:
            o = data.file_options
            files = [(o["root"], [f], np.zeros(1, dtype=np.int64), False, o["resize"], o["image_size"])
                     for f in split.files]
        pools[s] = Pool(index=np.asarray(index), x=x, labels=split.labels.cpu().numpy(), probs=outputs[s][0],
                        features=outputs[s][1], files=files)
    true = None
    if config.noise != "none":
        true_of = {"train": rec["train_true"], "validation": rec["val_true"]}
        if data.test is not None:
            true_of["test"] = data.test.labels.cpu().numpy()
        true = np.array([true_of[s][pools[s].position(i)] for s, i in zip(errors["split"], errors["index"])])
    table = kind_table = None
    names = [str(c) for c in rec["class_names"]] if "class_names" in rec else [str(c) for c in range(data.num_classes)]
    if "class_names" in rec:
        kind_table = True
        table = _read_user_table(config.dataset)
    return ReviewData(kind="table" if kind_table else "image", class_names=names, index=errors["index"],
                      split=errors["split"], given=errors["given"], score=errors["score"], flagged=errors["flagged"],
                      pools=pools, true=true, file_row=errors.get("file_row"), table=table,
                      label_column=config.label_column or "label",
                      feature_names=[str(n) for n in rec.get("feature_names", [])],
                      title=f"{run.name}: {config.dataset}, {config.method}, noise {config.noise}")


def _read_user_table(dataset: str):
    """The user's table file (read only, to show its rows), or None for .npz files."""
    path = Path(dataset.split(":", 1)[1]).expanduser()
    if path.suffix.lower() == ".npz":
        return None
    from ..data.table import _pandas

    pd = _pandas()
    frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
