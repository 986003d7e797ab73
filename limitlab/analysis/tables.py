"""The tables of a sweep (docs/method.md §7): one row per cell (dataset, noise, training-set size,
method); within a cell the hyperparameter setting with the highest MEAN noisy-validation accuracy over
seeds is selected, and the row reports mean ± std over those seeds of the clean test accuracy at the
best-validation epoch. Selection fields and method order come from :mod:`limitlab.methods`."""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass, field

from ..config import Config
from ..methods import METHODS, hyperparameter_fields, method_label
from ..noise import split_spec
from ..noise import noise_rate as _rate
from .runs import RunRecord

# Fields that do not change what a run learns; runs that differ only in them are the same setting.
NUISANCE = ("device", "precision", "compile", "workers", "eval_batch_size", "test_every", "train_eval_every",
            "data_dir")
CELL = ("dataset", "noise", "train_size", "method", "init_from", "q_init_from", "seed")
TABLE_COLUMNS = ("dataset", "train_size", "noise", "method", "variant", "selected", "seeds",
                 "test_accuracy_mean", "test_accuracy_std", "final_train_noisy_accuracy_mean",
                 "final_train_noisy_accuracy_std", "best_val_accuracy_mean", "best_epochs", "settings", "note",
                 "runs")


@dataclass
class Row:
    """One cell of a report: the selected setting and mean ± std over its seeds."""

    dataset: str
    train_size: int | None
    noise: str
    noise_kind: str
    noise_rate: float | None
    method: str                       # the method label (limitlab.methods.method_label)
    protocol: dict                    # the cell's other settings (patience, model, …)
    variant: str = ""                 # how rows of the same method differ, when they do
    selected: dict = field(default_factory=dict)  # the varying hyperparameters of the selected setting
    seeds: int = 0
    seed_list: list = field(default_factory=list)
    test_accuracy_mean: float | None = None
    test_accuracy_std: float | None = None
    final_train_noisy_accuracy_mean: float | None = None
    final_train_noisy_accuracy_std: float | None = None
    best_val_accuracy_mean: float | None = None
    best_epochs: list = field(default_factory=list)
    settings: int = 0                 # settings tried in the cell
    note: str = ""                    # missing seeds, cells and unfinished runs
    runs: list = field(default_factory=list)  # run directories of the selected setting

    @property
    def label(self) -> str:
        return self.method + (f" {self.variant}" if self.variant else "")


def default_select() -> tuple[str, ...]:
    """The config fields a report chooses among by default: the methods' tuned options, lr, dropout and weight decay."""
    return hyperparameter_fields()


def _keys(config: dict, select) -> tuple[tuple, tuple]:
    """(cell, setting): the cell is everything but the selected hyperparameters and the seed."""
    protocol = tuple((k, config[k]) for k in sorted(config) if k not in CELL and k not in NUISANCE and k not in select)
    cell = (config["dataset"], config["noise"], config["train_size"], method_label(config), protocol)
    setting = tuple((k, config[k]) for k in select)
    return cell, setting


def _mean_std(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _per_seed(group: list[RunRecord], key: str) -> list:
    """``summary[key]`` per distinct seed of ``group`` (sorted by seed): runs of the same seed (copies
    of a run, or a run trained twice) are averaged into one value, so that they count as one seed."""
    by_seed: dict = {}
    for r in group:
        by_seed.setdefault(r.config["seed"], []).append(r.summary.get(key))
    return [_mean_std(by_seed[seed])[0] for seed in sorted(by_seed)]


def _fmt_value(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _json_key(setting) -> str:
    return json.dumps(setting, sort_keys=True, default=str)


@dataclass
class _Cell:
    settings: dict = field(default_factory=dict)   # setting -> complete runs
    partial: int = 0
    expected: dict = field(default_factory=dict)   # setting -> seeds the preset expects
    seen_seeds: set = field(default_factory=set)


def aggregate(runs: list[RunRecord], select=None, preset=None) -> list[Row]:
    """One row per cell of the collected runs (and, with ``preset``, per cell the preset expects).

    Within a cell, runs are grouped by their values of the ``select`` fields (default: every method's
    hyperparameters); the group with the highest mean ``best_val_accuracy`` over its seeds is selected
    (noisy validation, never the test set). Rows hold mean and sample std over those seeds of
    ``test_accuracy`` (at the best-validation epoch) and ``final_train_noisy_accuracy``, the selected
    setting, the seeds, and a ``note`` on missing runs: seeds of the selected setting missing from the
    preset (or, without one, from the seeds seen in the cell), other expected runs missing, and
    unfinished runs."""
    select = tuple(default_select() if select is None else select)
    cells: dict[tuple, _Cell] = {}
    for run in runs:
        cell, setting = _keys(run.config, select)
        entry = cells.setdefault(cell, _Cell())
        entry.seen_seeds.add(run.config["seed"])
        if run.complete:
            entry.settings.setdefault(setting, []).append(run)
        else:
            entry.partial += 1
    if preset is not None:
        from ..experiments.expand import expand

        for spec in expand(preset):
            config = spec.resolved_config(".").to_dict()
            cell, setting = _keys(config, select)
            cells.setdefault(cell, _Cell()).expected.setdefault(setting, set()).add(config["seed"])

    rows = [_row(cell, entry) for cell, entry in cells.items()]
    _label_variants(rows)
    rows.sort(key=row_order)
    return rows


def _row(cell: tuple, entry: _Cell) -> Row:
    dataset, noise, train_size, label, protocol = cell
    row = Row(dataset=dataset, train_size=train_size, noise=noise, noise_kind=split_spec(noise)[0],
              noise_rate=_rate(noise), method=label, protocol=dict(protocol), settings=len(entry.settings))
    expected = entry.expected
    n_expected = sum(len(s) for s in expected.values())
    notes = []
    if entry.settings:
        def score(item):
            setting, group = item
            values = _per_seed(group, "best_val_accuracy")
            return (_mean_std(values)[0] or 0.0, len(values))

        # max() keeps the first of equal scores; settings are sorted so that the choice is deterministic
        ordered = sorted(entry.settings.items(), key=lambda item: _json_key(item[0]))
        setting, group = max(ordered, key=score)
        group = sorted(group, key=lambda r: r.config["seed"])
        summaries = [r.summary for r in group]
        seeds = [r.config["seed"] for r in group]
        # show the hyperparameters that vary in the cell (among the runs found or expected)
        tried = [dict(s) for s in (*entry.settings, *expected)]
        row.selected = {k: v for k, v in setting if len({_json_key(t[k]) for t in tried}) > 1}
        row.seed_list = sorted(set(seeds))
        row.seeds = len(row.seed_list)   # distinct seeds: copies of a run are not more evidence
        row.test_accuracy_mean, row.test_accuracy_std = _mean_std(_per_seed(group, "test_accuracy"))
        row.final_train_noisy_accuracy_mean, row.final_train_noisy_accuracy_std = _mean_std(
            _per_seed(group, "final_train_noisy_accuracy"))
        row.best_val_accuracy_mean = _mean_std(_per_seed(group, "best_val_accuracy"))[0]
        repeated = [f"seed {seed} ×{seeds.count(seed)}" for seed in row.seed_list if seeds.count(seed) > 1]
        if repeated:
            notes.append(f"duplicate runs ({', '.join(repeated)}) averaged per seed")
        row.best_epochs = [s.get("best_epoch") for s in summaries]
        row.runs = [str(r.path) for r in group]
        want = expected.get(setting) if expected else entry.seen_seeds
        if want:
            missing = len(set(want) - set(row.seed_list))
            if missing:
                notes.append(f"missing {missing}/{len(want)} seeds")
        if expected:
            done = {(s, r.config["seed"]) for s, g in entry.settings.items() for r in g}
            others = [(s, seed) for s, seeds in expected.items() if s != setting for seed in seeds]
            missing_other = sum((s, seed) not in done for s, seed in others)
            if missing_other:
                notes.append(f"{missing_other}/{len(others)} runs of other settings missing")
    else:
        notes.append(f"missing: no complete runs (0/{n_expected})" if n_expected else "missing: no complete runs")
    if entry.partial:
        notes.append(f"{entry.partial} unfinished")
    row.note = "; ".join(notes)
    return row


def _label_variants(rows: list[Row]) -> None:
    """Rows of one (dataset, noise, size, method) that differ in other settings say how."""
    defaults = Config().to_dict()
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.noise, r.train_size, r.method), []).append(r)
    for members in groups.values():
        if len(members) < 2:
            continue
        keys = sorted({k for r in members for k in r.protocol})
        differing = [k for k in keys if len({_json_key(r.protocol.get(k)) for r in members}) > 1]
        for r in members:
            shown = [k for k in differing if r.protocol.get(k) != defaults.get(k)]
            r.variant = " ".join(f"{k}={_fmt_value(r.protocol.get(k))}" for k in shown)
        if len({r.variant for r in members}) < len(members):
            for r in members:
                r.variant = " ".join(f"{k}={_fmt_value(r.protocol.get(k))}" for k in differing)


def row_order(r: Row):
    """Table order: dataset, size, noise kind and rate, then methods in registration order."""
    order = METHODS.names()
    method = r.method.split("+")[0].split(" ")[0]
    rank = order.index(method) if method in order else len(order)
    size = float("inf") if r.train_size is None else r.train_size
    rate = -1.0 if r.noise_rate is None else r.noise_rate
    return (r.dataset, size, r.noise_kind, rate, r.noise, rank, r.method, r.variant)


def selected_text(r: Row) -> str:
    """The row's selected hyperparameters as ``field=value, ...`` ("" when there are none)."""
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in r.selected.items())


def _pm(mean, std) -> str:
    if mean is None:
        return "–"
    return f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}")


def table_markdown(rows: list[Row]) -> str:
    """A markdown table: one line per cell, mean ± std over the seeds of the selected setting."""
    lines = ["| dataset | n | noise | method | selected | test acc (best val) | final train acc on noisy labels "
             "| val acc | seeds | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        method = r.method + (f" ({r.variant})" if r.variant else "")
        val = "–" if r.best_val_accuracy_mean is None else f"{r.best_val_accuracy_mean:.3f}"
        lines.append(f"| {r.dataset} | {'all' if r.train_size is None else r.train_size} | {r.noise} | "
                     f"{method} | {selected_text(r) or '-'} | "
                     f"{_pm(r.test_accuracy_mean, r.test_accuracy_std)} | "
                     f"{_pm(r.final_train_noisy_accuracy_mean, r.final_train_noisy_accuracy_std)} | "
                     f"{val} | {r.seeds} | {r.note} |")
    return "\n".join(lines) + "\n"


def table_csv(rows: list[Row]) -> bytes:
    """The rows as CSV (columns TABLE_COLUMNS; numbers unrounded, empty where missing)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_COLUMNS)
    for r in rows:
        out = []
        for c in TABLE_COLUMNS:
            v = getattr(r, c)
            if c == "selected":
                v = selected_text(r)
            elif c in ("best_epochs", "runs"):
                v = ";".join(str(x) for x in v)
            elif c == "train_size":
                v = "all" if v is None else v
            out.append("" if v is None else v)
        writer.writerow(out)
    return buf.getvalue().encode()
