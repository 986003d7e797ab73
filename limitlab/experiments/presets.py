"""Named sweeps for the paper's experiments (docs/method.md §3, §5, §7), generated from compact tables.
Presets only build configs: listing them imports neither torch nor the training loop.

A preset is one or more *grids*. A grid is a ``base`` dict of Config overrides, ``axes`` (Config field
-> list of values, crossed), the ``seeds``, and ``select``: the axes that are hyperparameters, chosen
per table cell by the mean noisy-validation accuracy over seeds (docs/method.md §7). The value ``"@ce"`` in
``init_from`` or ``q_init_from`` means "the CE run of the same cell and seed": the sweep resolves it
to that run's directory and runs it first (see :mod:`limitlab.experiments.expand`).

Names say what a preset runs: ``mnist-n1000-uniform0.8-limit-g`` is one table cell (8 β × 5 seeds),
``mnist-n1000-uniform0.8`` every method of that cell, ``mnist-n1000-uniform`` all noise rates at that
size, ``mnist-uniform`` the whole MNIST table; likewise ``cifar10-uniform0.4-limit-l+``,
``cifar10-pair``, ``cifar100-uniform0.4``, ``cifar10n-aggre`` (human labels), ``cifar100n``,
``clothing1m``, ``memorization``.

A JSON grid file has the same structure, either one grid::

    {"description": "...", "base": {"dataset": "digits", "epochs": 2}, "axes": {"method": ["ce", "limit-l"]},
     "seeds": [0, 1], "select": []}

or several: ``{"description": "...", "grids": [{"base": ..., "axes": ..., "seeds": ..., "select": ...}, ...]}``.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, check_field
from ..errors import LimitlabError
from ..methods import METHODS
from .recipes import add_recipe_presets

CE_RUN = "@ce"            # a dependency: the CE run of the same cell and seed
LINK_FIELDS = ("init_from", "q_init_from")
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(Config))


@dataclass(frozen=True)
class Grid:
    """``base`` overrides crossed with ``axes`` (field -> values), each combination run with every seed."""

    base: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    seeds: tuple = (0,)
    select: tuple = ()     # hyperparameter axes, selected per cell on noisy validation

    def size(self) -> int:
        n = len(self.seeds)
        for values in self.axes.values():
            n *= len(values)
        return n

    def to_dict(self) -> dict:
        return {"base": dict(self.base), "axes": {k: list(v) for k, v in self.axes.items()},
                "seeds": list(self.seeds), "select": list(self.select)}


@dataclass(frozen=True)
class Preset:
    """A named experiment: a description and one or more grids of runs."""

    name: str
    description: str
    grids: tuple[Grid, ...]

    @property
    def select(self) -> tuple[str, ...]:
        """The hyperparameter fields selected on noisy validation in any of its grids."""
        out: list[str] = []
        for g in self.grids:
            out += [s for s in g.select if s not in out]
        return tuple(out)

    def to_dict(self) -> dict:
        """The JSON grid-file form (``load_grid`` reads it back)."""
        if len(self.grids) == 1:
            return {"description": self.description, **self.grids[0].to_dict()}
        return {"description": self.description, "grids": [g.to_dict() for g in self.grids]}


# ---------------------------------------------------------------------------------------- the tables
# β grids of the reference code (scripts/generate_commands.py of the paper's repository); the other
# methods' grids are registered with them (limitlab.methods).
BETAS = METHODS.get("limit-g").grid["beta"]
BETAS_CIFAR10 = (0, 0.1, 0.3, 1, 3, 10, 30)
BETAS_CIFAR100 = (0.1, 0.3, 1, 3, 10, 30)
SAMPLE_LAMBDAS = {"limit-g": (5, 50, 500, 5000), "limit-l": (5, 10, 30, 100)}  # +S (docs/method.md §2)


def _methods(betas, limit_patience=None, plus_patience=None, skip=(), sample=True):
    """Preset method name -> (overrides, axes) for one table: every registered method with its grid
    (``skip``: methods the table leaves out), the LIMIT variants +S (sampled gradient) and "+" (q
    starts from the CE run's best classifier). ``select`` of each grid is its axes. Methods with a
    ``recipe`` (the ones compared today) get their own presets (:mod:`limitlab.experiments.recipes`)."""
    lp = {} if limit_patience is None else {"patience": limit_patience}
    pp = {} if plus_patience is None else {"patience": plus_patience}
    m = {}
    for spec in METHODS.specs():
        if spec.name in skip or spec.recipe:
            continue
        overrides = {"method": spec.name, **({"init_from": CE_RUN} if spec.starts_from_ce else {})}
        axes = dict(spec.grid)
        if "beta" in axes:  # LIMIT: the table's β grid and patience
            axes["beta"], overrides = betas, {**overrides, **lp}
        m[spec.name] = (overrides, axes)
    limits = [s.name for s in METHODS.specs() if "q_init_from" in s.options and s.name not in skip]
    if sample:
        for name in limits:
            m[f"{name}-sample"] = ({"method": name, **lp}, {"beta": betas, "sample_lambda": SAMPLE_LAMBDAS[name]})
    for name in limits:
        m[f"{name}+"] = ({"method": name, "q_init_from": CE_RUN, **pp}, {"beta": betas})
    return m


# Each table: preset-name prefix -> (description, base overrides, cells, methods, seeds).
# cells: cell name -> overrides (train size and noise).
MNIST = dict(
    base={"dataset": "mnist", "epochs": 400, "patience": 100},  # model: cnn4 (the default for 28×28)
    sizes={"n1000": 1000, "n10000": 10000, "nall": None},
    rates=(0.5, 0.8, 0.89),
    methods=_methods(BETAS),
    seeds=(0, 1, 2, 3, 4),
)
CIFAR_BASE = {"model": "resnet34", "epochs": 400, "patience": 100}
CIFAR_METHODS = dict(limit_patience=200, plus_patience=200, skip=("ce-gn", "gce", "penalize"), sample=False)
CIFAR_SEEDS = (0,)  # the reference code ran one seed per CIFAR setting
CLOTHING1M = dict(
    # The dataset brings its own clean validation (clean_val.txt) and test set; real label noise.
    # Epoch count: our choice (one epoch is 1M images); selection is by the best clean-validation epoch.
    base={"dataset": "clothing1m", "model": "resnet50", "pretrained": True, "noise": "none",
          "epochs": 10, "patience": None, "train_eval_every": 0},
    methods={"ce": ({"method": "ce"}, {}),
             "limit-g": ({"method": "limit-g"}, {"beta": (0.1, 1, 10)}),
             "limit-l": ({"method": "limit-l"}, {"beta": (0.1, 1, 10)})},
    seeds=(0,),
)


def _grid(base: dict, overrides: dict, axes: dict, seeds) -> Grid:
    return Grid(base={**base, **overrides}, axes={k: tuple(v) for k, v in axes.items()}, seeds=tuple(seeds),
                select=tuple(axes))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _count_text(grid: Grid) -> str:
    factors = [f"{len(v)} {k}" for k, v in grid.axes.items()] + [_plural(len(grid.seeds), "seed")]
    return _plural(grid.size(), "run") + (f" ({' × '.join(factors)})" if len(factors) > 1 else "")


def _with_dependency(grids: list[Grid], ce: Grid) -> list[Grid]:
    """A cell whose runs start from the CE run also runs that CE run (listed first)."""
    if any(CE_RUN in (g.base.get(f) for f in LINK_FIELDS) for g in grids) and ce not in grids:
        return [ce, *grids]
    return grids


def _build() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}

    def add(name, description, grids):
        assert name not in presets, name
        presets[name] = Preset(name, description, tuple(grids))

    def add_table(prefix, title, cells, methods, seeds, group_levels):
        """cells: list of (cell name parts, overrides, description). Adds every cell × method preset, the
        per-cell groups and the groups named by ``group_levels`` (name -> predicate on cell parts)."""
        all_grids: dict[str, list[Grid]] = {}
        for parts, overrides, text in cells:
            cell = "-".join([prefix, *parts])
            ce = _grid(overrides, *methods["ce"], seeds)
            cell_grids = []
            for method, (m_overrides, axes) in methods.items():
                grid = _grid(overrides, m_overrides, axes, seeds)
                cell_grids.append(grid)
                grids = _with_dependency([grid], ce)
                add(f"{cell}-{method}", f"{text}, {method}: {_count_text(grid)}"
                    + (", after the CE runs they start from" if len(grids) > 1 else ""), grids)
            add(cell, f"{text}, all methods", cell_grids)
            all_grids[cell] = cell_grids
        for name, (pick, text) in group_levels.items():
            grids = [g for cell, gs in all_grids.items() if pick(cell) for g in gs]
            add(name, text, grids)

    # MNIST (docs/method.md §5, §7): 4-layer CNN, 5 seeds, patience 100, uniform noise
    mnist_cells = [([size, f"uniform{p:g}"], {**MNIST["base"], "train_size": n, "noise": f"uniform:{p:g}"},
                    f"MNIST, {'all 48k' if n is None else n} training examples, uniform noise {p:g}")
                   for size, n in MNIST["sizes"].items() for p in MNIST["rates"]]
    groups = {f"mnist-{size}-uniform": ((lambda c, s=size: c.startswith(f"mnist-{s}-")),
                                        f"MNIST table, {'all' if n is None else n} training examples: "
                                        f"uniform noise {', '.join(f'{p:g}' for p in MNIST['rates'])}, all methods")
              for size, n in MNIST["sizes"].items()}
    groups["mnist-uniform"] = (lambda c: True, "the MNIST table (docs/method.md §5, §7): n ∈ {1000, 10000, all} × "
                                               "uniform noise {0.5, 0.8, 0.89} × all methods, 5 seeds")
    add_table("mnist", "MNIST", mnist_cells, MNIST["methods"], MNIST["seeds"], groups)

    # CIFAR-10 uniform and pair noise, CIFAR-100 uniform 0.4: ResNet-34, patience 100 (200 for LIMIT and "+")
    cifar_methods = {
        "cifar10": _methods(BETAS_CIFAR10, **CIFAR_METHODS),
        "cifar100": _methods(BETAS_CIFAR100, **CIFAR_METHODS),
    }
    rates = (0.2, 0.4, 0.6, 0.8)
    uniform = [([f"uniform{p:g}"], {"dataset": "cifar10", **CIFAR_BASE, "noise": f"uniform:{p:g}"},
                f"CIFAR-10, uniform noise {p:g}") for p in rates]
    add_table("cifar10", "CIFAR-10", uniform, cifar_methods["cifar10"], CIFAR_SEEDS,
              {"cifar10-uniform": (lambda c: "-uniform" in c, "the CIFAR-10 uniform-noise table: p ∈ {0.2, 0.4, 0.6, "
                                   "0.8} × all methods, ResNet-34")})
    pair = [([f"pair{p:g}"], {"dataset": "cifar10", **CIFAR_BASE, "noise": f"pair-cifar10:{p:g}"},
             f"CIFAR-10, pair noise {p:g} (truck→automobile, bird→airplane, deer→horse, cat→dog)") for p in rates]
    add_table("cifar10", "CIFAR-10", pair, cifar_methods["cifar10"], CIFAR_SEEDS,
              {"cifar10-pair": (lambda c: "-pair" in c, "the CIFAR-10 pair-noise table: p ∈ {0.2, 0.4, 0.6, 0.8} × "
                                "all methods, ResNet-34")})
    c100 = [(["uniform0.4"], {"dataset": "cifar100", **CIFAR_BASE, "noise": "uniform:0.4"},
             "CIFAR-100, uniform noise 0.4")]
    add_table("cifar100", "CIFAR-100", c100, cifar_methods["cifar100"], CIFAR_SEEDS, {})
    presets["cifar100-uniform0.4"] = dataclasses.replace(
        presets["cifar100-uniform0.4"], description="the CIFAR-100 table: uniform noise 0.4 × all methods, ResNet-34")

    # CIFAR-10N / CIFAR-100N (Wei et al., ICLR 2022): human noisy labels for the CIFAR training sets, as
    # labels:FILE:KEY; the files are the user's (http://noisylabels.com), looked for in the current
    # folder, then in the data root: <data root>/cifar10/CIFAR-10_human.pt, <data root>/cifar100/CIFAR-100_human.pt
    human = [([name], {"dataset": "cifar10", **CIFAR_BASE, "noise": f"labels:cifar10/CIFAR-10_human.pt:{key}"},
              f"CIFAR-10N, {text} human labels (CIFAR-10_human.pt {key})")
             for name, key, text in (("aggre", "aggre_label", "aggregate (majority of 3, ~9% noisy)"),
                                     ("random1", "random_label1", "first annotator's (~17% noisy)"),
                                     ("worst", "worse_label", "worst of 3 (~40% noisy)"))]
    add_table("cifar10n", "CIFAR-10N", human, cifar_methods["cifar10"], CIFAR_SEEDS,
              {"cifar10n": (lambda c: True, "CIFAR-10N: aggregate, random-1 and worst human labels × all methods, "
                                            "ResNet-34 (put CIFAR-10_human.pt in <data root>/cifar10/)")})
    human100 = [(["noisy"], {"dataset": "cifar100", **CIFAR_BASE,
                             "noise": "labels:cifar100/CIFAR-100_human.pt:noisy_label"},
                 "CIFAR-100N, human fine labels (CIFAR-100_human.pt noisy_label, ~40% noisy)")]
    add_table("cifar100n", "CIFAR-100N", human100, cifar_methods["cifar100"], CIFAR_SEEDS,
              {"cifar100n": (lambda c: True, "CIFAR-100N: human fine labels × all methods, ResNet-34 (put "
                                             "CIFAR-100_human.pt in <data root>/cifar100/)")})

    add_recipe_presets(add, _grid, _count_text, CIFAR_SEEDS)

    # Clothing1M: real noisy labels, ResNet-50 (ImageNet weights), its own clean validation and test sets
    c1m = CLOTHING1M
    for method, (overrides, axes) in c1m["methods"].items():
        grid = _grid(c1m["base"], overrides, axes, c1m["seeds"])
        add(f"clothing1m-{method}", f"Clothing1M, {method}, ResNet-50 pretrained: {_count_text(grid)}", [grid])
    add("clothing1m", "the Clothing1M table: CE, LIMIT_G and LIMIT_L, ResNet-50 pretrained, clean validation "
        "and test sets of the dataset", [_grid(c1m["base"], o, a, c1m["seeds"]) for o, a in c1m["methods"].values()])

    # the memorization study (docs/method.md §9, the paper's first figure)
    defaults = Config().to_dict()
    mem = []
    for config in memorization_configs().values():
        d = config.to_dict()
        seed = d.pop("seed")
        mem.append(Grid(base={k: v for k, v in d.items() if v != defaults[k]}, axes={}, seeds=(seed,)))
    add("memorization", "the memorization study (docs/method.md §9): MNIST, uniform 0.8, MLP, 400 epochs without early "
        "stopping, clean validation; CE, CE + dropout, CE + weight decay, LIMIT_L", mem)
    return presets


def memorization_configs(epochs: int = 400, train_size: int | None = None, data_dir: str | None = None,
                         seed: int = 0, dropout: float = 0.5, weight_decay: float = 1e-4, beta: float = 10.0,
                         dataset: str = "mnist", noise: str = "uniform:0.8") -> dict[str, Config]:
    """The memorization study's runs (docs/method.md §9): MNIST, 80% uniform noise, the 4-layer MLP, no
    early stopping, clean validation, a test pass every epoch (its curves are plotted); CE, CE +
    dropout, CE + weight decay and LIMIT_L, by name."""
    base = Config(dataset=dataset, data_dir=data_dir, noise=noise, train_size=train_size, model="mlp",
                  method="ce", epochs=epochs, patience=None, clean_validation=True, seed=seed,
                  test_every=1)  # the plot shows the clean test accuracy at every epoch
    return {
        "ce": base,
        f"ce+dropout{dropout:g}": dataclasses.replace(base, dropout=dropout),
        f"ce+weight-decay{weight_decay:g}": dataclasses.replace(base, weight_decay=weight_decay),
        f"limit-l beta{beta:g}": dataclasses.replace(base, method="limit-l", beta=beta),
    }


PRESETS: dict[str, Preset] = _build()


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line description) of every preset, sorted by name."""
    return sorted((name, p.description) for name, p in PRESETS.items())


# ------------------------------------------------------------------------------------- JSON grid files
def _check_fields(fields, where: str) -> None:
    unknown = [f for f in fields if f not in CONFIG_FIELDS]
    if unknown:
        hints = [difflib.get_close_matches(f, CONFIG_FIELDS, n=1) for f in unknown]
        text = ", ".join(f"{f!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for f, h in zip(unknown, hints))
        raise LimitlabError(f"{where}: unknown Config field(s) {text}")


def grid_from_dict(d: dict, where: str) -> Grid:
    """One grid from its JSON form, checked: known fields, lists of values, integer seeds."""
    if not isinstance(d, dict):
        raise LimitlabError(f"{where}: a grid must be a JSON object with base, axes, seeds and select")
    extra = sorted(set(d) - {"base", "axes", "seeds", "select", "description", "name"})
    if extra:
        raise LimitlabError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}; a grid has base, axes, seeds and select")
    base, axes = d.get("base", {}), d.get("axes", {})
    seeds, select = d.get("seeds", [0]), d.get("select", [])
    if not isinstance(base, dict) or not isinstance(axes, dict):
        raise LimitlabError(f"{where}: base and axes must be JSON objects (field -> value, field -> list of values)")
    _check_fields(base, f"{where}, base")
    _check_fields(axes, f"{where}, axes")
    if "seed" in base or "seed" in axes:
        raise LimitlabError(f"{where}: give the seeds as \"seeds\": [...], not as a base or axes field")
    for k, v in axes.items():
        if not isinstance(v, list) or not v:
            raise LimitlabError(f"{where}: axes.{k} must be a non-empty list of values, not {v!r}")
    try:  # the value types, as Config.from_dict will check them when the runs are expanded
        for k, v in base.items():
            check_field(k, v)
        for k, values in axes.items():
            for v in values:
                check_field(k, v)
    except LimitlabError as e:
        raise LimitlabError(f"{where}: {e}") from None
    both = sorted(set(base) & set(axes))
    if both:
        raise LimitlabError(f"{where}: {', '.join(both)} is both in base and in axes; keep it in one")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds):
        raise LimitlabError(f"{where}: seeds must be a non-empty list of integers, not {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise LimitlabError(f"{where}: seeds {seeds} repeat a seed")
    if not isinstance(select, list) or not all(isinstance(s, str) for s in select):
        raise LimitlabError(f"{where}: select must be a list of field names, not {select!r}")
    _check_fields(select, f"{where}, select")
    return Grid(base=dict(base), axes={k: tuple(v) for k, v in axes.items()}, seeds=tuple(seeds),
                select=tuple(select))


def preset_from_dict(d: dict, name: str, where: str | None = None) -> Preset:
    """A Preset from the JSON grid-file form (one grid, or ``{"description", "grids": [...]}``);
    ``where`` names the source in error messages."""
    where = where or name
    if not isinstance(d, dict):
        raise LimitlabError(f"{where}: a grid file must hold a JSON object, not {type(d).__name__}")
    description = d.get("description", f"grid file {name}")
    if "grids" in d:
        extra = sorted(set(d) - {"description", "grids", "name"})
        if extra:
            raise LimitlabError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} beside \"grids\"")
        if not isinstance(d["grids"], list) or not d["grids"]:
            raise LimitlabError(f"{where}: \"grids\" must be a non-empty list of grids")
        grids = [grid_from_dict(g, f"{where}, grid {i + 1}") for i, g in enumerate(d["grids"])]
    else:
        grids = [grid_from_dict(d, where)]
    return Preset(str(d.get("name", name)), str(description), tuple(grids))


def load_grid(preset: str | Path | Preset) -> Preset:
    """A preset by name, or a JSON grid file (a path ending in .json, or any existing file)."""
    if isinstance(preset, Preset):
        return preset
    text = str(preset)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text).expanduser()
    if text.endswith(".json") or path.is_file():
        try:
            raw = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise LimitlabError(f"cannot read the grid file {path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            d = json.loads(raw)
        except json.JSONDecodeError as e:
            raise LimitlabError(f"the grid file {path} is not valid JSON: {e.msg} at line {e.lineno}, "
                                f"column {e.colno}") from None
        except RecursionError:
            raise LimitlabError(f"the grid file {path} is nested too deeply to be a grid") from None
        return preset_from_dict(d, path.stem, str(path))
    close = difflib.get_close_matches(text, PRESETS, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; `limitlab presets` (list_presets() in Python) names them all"
    raise LimitlabError(f"unknown preset {text!r}{hint} (a JSON grid file must end in .json)")
