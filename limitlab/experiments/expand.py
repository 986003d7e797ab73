"""A preset (or JSON grid file) expanded into runs: each run's config, its directory name (from
the settings that define and vary it) and the runs it starts from (``"@ce"``), dependencies first.

    specs = expand("mnist-n1000-uniform0.8-limit-g")          # 40 RunSpecs, dependencies first

Names and dependencies are derived from the method registry (:mod:`limitlab.methods`): a method's
options and main hyperparameter appear in run names; the CE run a run depends on is the one that
agrees with it on everything but the method's settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, field_infos
from ..errors import LimitlabError
from ..methods import METHODS, option_fields
from ..noise_files import LABEL_FILE_SUFFIXES
from ..noise import split_spec
from .presets import CE_RUN, LINK_FIELDS, Preset, load_grid

# Settings every method may change (besides its own options, limitlab.methods): a run with other
# values of these is "another method" of the same cell, not another cell. (Patience too may differ:
# LIMIT and "+" runs on CIFAR wait longer than their CE run.)
GENERAL_METHOD_FIELDS = ("init_from", "dropout", "weight_decay", "lr", "patience")
def method_fields() -> tuple[str, ...]:
    """Fields that make a run "a method" rather than "a cell"."""
    return ("method", *option_fields(), *GENERAL_METHOD_FIELDS)


def name_fields() -> tuple[str, ...]:
    """Hyperparameters shown in run names when they are an axis, a method's main one, or differ
    from the default, in this order: the methods' options, then the general ones."""
    return (*(f for f in option_fields() if f not in LINK_FIELDS and f != "transition"), "lr", "dropout", "weight_decay")


@dataclass
class RunSpec:
    """One run of a sweep: its directory name, its config, and the runs it needs first.

    ``links`` maps a Config field (``init_from``/``q_init_from``) to the run whose directory it names;
    ``config`` keeps the ``"@ce"`` placeholder, :meth:`resolved_config` fills in the path."""

    name: str
    config: Config
    depends_on: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)

    def resolved_config(self, out_dir: str | Path) -> Config:
        root = Path(os.path.abspath(out_dir))
        return dataclasses.replace(self.config, **{f: str(root / run) for f, run in self.links.items()})


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _safe(part: str) -> str:
    """Letters, digits, '.', '+' and '-' only: '_' separates the parts of a name."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", part).strip("-") or "x"


def _noise_part(noise: str) -> str:
    kind, arg = split_spec(noise)
    if not arg:
        return kind
    if kind == "matrix":
        arg = Path(arg).stem
    if kind == "labels":  # FILE[:KEY] -> file name and key, e.g. labels-CIFAR-10-human-aggre-label
        plain = Path(arg).suffix.lower() in LABEL_FILE_SUFFIXES or ":" not in arg
        path, _, key = (arg, "", "") if plain else arg.rpartition(":")
        arg = "-" + Path(path).stem + (f"-{key}" if key else "")
    return f"{kind}{'-' if kind[-1:].isdigit() else ''}{arg}"


def _dataset_part(dataset: str) -> str:
    """``table:/data/flowers.csv`` -> ``table-flowers``: the file name, not its folders."""
    name, sep, arg = dataset.partition(":")
    return f"{name}-{Path(arg).stem}" if sep else dataset


def _field_part(name: str, value) -> str:
    """A field's part of a run name: its short name (declared with the field, limitlab.config.setting)
    and value, e.g. ``wd0.0001``, ``q0.7``."""
    if name == "grad_noise":
        return str(value).replace(":", "")
    short = next(info.short for info in field_infos() if info.name == name)
    if isinstance(value, bool):
        return short if value else f"no-{short}"
    return f"{short}{_fmt(value)}"


def run_name(config: Config, axes=()) -> str:
    """A readable directory name from the settings that define and vary a run, e.g.
    ``mnist_n1000_uniform0.8_limit-g_beta10_seed0`` (``+``: the q-network starts from a CE run)."""
    defaults = Config()
    parts = [_dataset_part(config.dataset), f"n{config.train_size}" if config.train_size is not None else "nall",
             _noise_part(config.noise), config.method + ("+" if config.q_init_from else "")]
    main = METHODS.get(config.method).main if config.method in METHODS else None
    shown = name_fields()
    for f in shown:
        value = getattr(config, f)
        if f in axes or f == main or value != getattr(defaults, f):
            parts.append(_field_part(f, value))
    extra = [f for f in axes if f not in shown and f not in ("dataset", "train_size", "noise", "method")]
    parts += [_field_part(f, getattr(config, f)) for f in extra]
    return "_".join(_safe(p) for p in parts)


def _ce_key(config: Config) -> tuple:
    d = config.to_dict()
    fields = method_fields()
    return tuple((k, v) for k, v in d.items() if k not in fields)


def _is_plain_ce(config: Config) -> bool:
    return (config.method == "ce" and not config.init_from and not config.q_init_from and not config.transition
            and config.dropout == 0 and config.weight_decay == 0)


def _ce_reference(config: Config) -> Config:
    """The CE run a run with ``"@ce"`` starts from, when the preset does not list it: the same run with
    the method's own settings at their defaults."""
    defaults = Config()
    return dataclasses.replace(config, method="ce",
                               **{f: getattr(defaults, f) for f in method_fields() if f not in ("method", "patience")})


def _unread_options(method) -> set[str]:
    """The method options that ``method`` does not read (none for an unknown method: validation
    names it)."""
    if not isinstance(method, str) or method not in METHODS:
        return set()
    return set(option_fields()) - set(METHODS.get(method).options)


def expand(preset: str | Path | Preset) -> list[RunSpec]:
    """The runs of a preset (name, JSON grid file or Preset), in a deterministic order with every run
    after the runs it depends on. Identical configs listed twice are one run. A method option that a
    run's method does not read (``beta`` crossed with ``method: [ce, limit-l]``) is left at its default
    for that run, so such a cross gives one CE run per seed."""
    preset = load_grid(preset)
    configs: list[Config] = []
    axes_of: list[set] = []
    seen: dict[str, int] = {}
    for number, grid in enumerate(preset.grids, 1):
        if not grid.base and not grid.axes:
            where = f"preset {preset.name!r}" + (f", grid {number}," if len(preset.grids) > 1 else "")
            default = Config()
            raise LimitlabError(f"{where} sets no field (its base and axes are empty), so it would be one run of "
                                f"every default ({default.dataset}, {default.epochs} epochs); name at least the "
                                'dataset, e.g. {"base": {"dataset": "mnist"}}')
        keys = list(grid.axes)
        for combo in itertools.product(*(grid.axes[k] for k in keys)):
            for seed in grid.seeds:
                values = {**grid.base, **dict(zip(keys, combo)), "seed": seed}
                unread = _unread_options(values.get("method", Config.method))
                values = {k: v for k, v in values.items() if k not in unread}
                try:
                    config = Config.from_dict(values)
                    config.validate()
                except LimitlabError as e:
                    raise LimitlabError(f"preset {preset.name}: {e}") from None
                except TypeError as e:
                    raise LimitlabError(f"preset {preset.name}: a value has the wrong type ({e})") from None
                for f in LINK_FIELDS:
                    value = getattr(config, f)
                    if isinstance(value, str) and value.startswith("@") and value != CE_RUN:
                        raise LimitlabError(f"preset {preset.name}: {f} {value!r} is not a known dependency; "
                                            f"use {CE_RUN!r} (the CE run of the same cell and seed) or a directory")
                    if value == CE_RUN and config.method == "ce":
                        raise LimitlabError(f"preset {preset.name}: a ce run cannot start from {CE_RUN!r} (itself)")
                key = json.dumps(config.to_dict(), sort_keys=True)
                varied = set(keys) - unread
                if key in seen:
                    axes_of[seen[key]] |= varied
                    continue
                seen[key] = len(configs)
                configs.append(config)
                axes_of.append(varied)

    # "@ce": the plain CE run of the same cell and seed, from the preset or added to it
    candidates: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        if _is_plain_ce(c):
            candidates.setdefault(_ce_key(c), []).append(i)
    links: dict[int, dict[str, int]] = {}
    for i in range(len(configs)):
        c = configs[i]
        wanted = [f for f in LINK_FIELDS if getattr(c, f) == CE_RUN]
        if not wanted:
            continue
        found = candidates.get(_ce_key(c), [])
        if len(found) > 1:  # several CE settings (e.g. an lr axis): the one at the default lr
            found = [j for j in found if configs[j].lr == Config().lr] or found
        if len(found) > 1:
            raise LimitlabError(f"preset {preset.name}: {CE_RUN!r} of a {c.method} run (seed {c.seed}) matches "
                                f"{len(found)} CE runs; keep one CE setting per cell")
        if not found:
            ref = _ce_reference(c)
            key = json.dumps(ref.to_dict(), sort_keys=True)
            if key not in seen:
                seen[key] = len(configs)
                configs.append(ref)
                axes_of.append(set())
            found = [seen[key]]
            candidates.setdefault(_ce_key(ref), []).append(found[0])
        links[i] = {f: found[0] for f in wanted}

    names = _unique_names(configs, axes_of)
    specs = [RunSpec(names[i], c, sorted({names[j] for j in links.get(i, {}).values()}),
                     {f: names[j] for f, j in links.get(i, {}).items()}) for i, c in enumerate(configs)]
    return _dependencies_first(specs)


def _unique_names(configs: list[Config], axes_of: list[set]) -> list[str]:
    names = [run_name(c, a) for c, a in zip(configs, axes_of)]
    groups: dict[tuple, list[int]] = {}
    for i, (n, c) in enumerate(zip(names, configs)):
        groups.setdefault((n, c.seed), []).append(i)
    for (base, _), members in groups.items():
        if len(members) == 1:
            continue
        # two different configs under one name: add the fields that tell them apart
        dicts = [configs[i].to_dict() for i in members]
        differing = [f for f in dicts[0] if f != "seed" and len({json.dumps(d[f]) for d in dicts}) > 1]
        for i, d in zip(members, dicts):
            names[i] = "_".join([base, *(_safe(_field_part(f, d[f])) for f in differing)])
    if len({(n, c.seed) for n, c in zip(names, configs)}) < len(names):
        for i, c in enumerate(configs):
            digest = hashlib.sha1(json.dumps(c.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
            names[i] = f"{names[i]}_{digest}"
    return [f"{n}_seed{c.seed}" for n, c in zip(names, configs)]


def _dependencies_first(specs: list[RunSpec]) -> list[RunSpec]:
    by_name = {s.name: s for s in specs}
    out: list[RunSpec] = []
    done: set[str] = set()

    def visit(spec: RunSpec, path: tuple):
        if spec.name in done:
            return
        if spec.name in path:
            raise LimitlabError(f"the runs {' -> '.join(path)} depend on each other in a cycle")
        for dep in spec.depends_on:
            visit(by_name[dep], (*path, spec.name))
        done.add(spec.name)
        out.append(spec)

    for s in specs:
        visit(s, ())
    return out
