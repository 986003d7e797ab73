"""One typed config per run. Every field has a default; the run directory's ``config.json`` holds
it, and ``Config.load(path)`` re-creates the run from that file alone."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from .errors import LimitlabError


@dataclass
class Config:
    """Every setting of one run, with the paper protocol's defaults; saved as the run's ``config.json``."""

    # data (docs/method.md §5)
    dataset: str = "digits"
    data_dir: str | None = None
    noise: str = "none"             # a noise spec (limitlab.noise.NOISE_MODELS), e.g. "uniform:0.8"
    train_size: int | None = None   # training subset size, taken before corruption
    val_fraction: float = 0.2       # seeded random share of the official training set
    clean_validation: bool = False  # default: validation labels carry the same noise
    label_column: str | None = None  # table:FILE (.csv/.parquet): the label column (None: "label")
    id_column: str | None = None    # table:FILE (.csv/.parquet): a row key column, not a feature (label_errors.csv)
    # model and method (docs/method.md §2, §6; options per method: limitlab.methods)
    model: str | None = None        # None: the dataset's default (cnn4 for 28×28, mlp otherwise)
    method: str = "limit-l"
    beta: float = 10.0              # LIMIT's predicted-gradient norm penalty
    sample_lambda: float | None = None  # LIMIT +S: sample the classifier's gradient around ĝ
    warmup: int = 0                 # LIMIT: epochs in which only the q-network trains
    grad_noise: str = "gaussian:0.1"  # ce-gn: DIST:SIGMA of the noise on each example's logit gradient
    gce_q: float = 0.7              # gce's exponent q in (0, 1]
    penalty_lambda: float = 1.0     # penalize: λ of ‖z‖²‖e_y − s(q)‖²
    penalty_beta: float = 0.0       # penalize: β of ‖z‖²‖s(f) − s(q)‖²
    transition: str | None = None   # fw: a known T (file) instead of the estimate from --init-from
    init_from: str | None = None    # a CE run directory: the classifier starts from its best checkpoint
    q_init_from: str | None = None  # LIMIT "+": the q-network starts from this CE run's best classifier
    dropout: float = 0.0
    weight_decay: float = 0.0
    # optimisation and protocol (docs/method.md §7)
    lr: float = 1e-3
    batch_size: int = 256
    epochs: int = 400
    patience: int | None = 100      # early stopping on noisy-validation accuracy; None: never stop early
    seed: int = 0
    device: str = "auto"            # "auto": cuda when available, else cpu
    precision: str = "auto"         # "auto": bf16 autocast on CUDA, fp32 on CPU; or "fp32", "bf16"
    compile: bool = False           # torch.compile the training step (GPU; slow to start on CPU)
    image_size: int | None = None   # image-file datasets: crop size (None: the dataset's, 224), resized to 8/7 of it
    workers: int = 4                # loader processes for image-file datasets (Clothing1M, imagefolder)
    pretrained: bool = False        # ImageNet weights for resnet50 (needs the optional torchvision)
    train_eval_every: int = 1       # pass over the training set for the memorization metrics every k epochs (0: never)
    eval_batch_size: int = 1024    # fastest for cnn4 and mlp on CPU (benchmarks/speed.py, RESULTS.md)
    test_every: int = 0             # test-set pass every k epochs besides the ones the result needs (0: only at
                                    # a new best validation epoch and at the last epoch; 1: per-epoch test curves)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """A Config from its dict form (a JSON config file), every field's type checked."""
        if not isinstance(d, dict):
            raise LimitlabError(f"a config must be a JSON object (field -> value), not {_json_type(d)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(repr, set(d) - known))
        if unknown:
            raise LimitlabError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
        return cls(**{k: check_field(k, v) for k, v in d.items()})

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON, or not UTF-8
            raise LimitlabError(f"cannot read the run config {path}: {getattr(e, 'strerror', None) or e}") from None
        try:
            return cls.from_dict(d)
        except LimitlabError as e:
            raise LimitlabError(f"{path}: {e}") from None

    def validate(self) -> None:
        """Check the values that do not need the data; raises LimitlabError with one sentence."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise LimitlabError(f"--{f.name.replace('_', '-')} must be a finite number, not {value}")
        checks = [
            (0.0 < self.val_fraction < 1.0, f"--val-fraction must be in (0, 1), not {self.val_fraction}"),
            (self.train_size is None or self.train_size >= 2, f"--train-size must be at least 2, not {self.train_size}"),
            (self.beta >= 0, f"--beta must be >= 0, not {self.beta}"),
            (self.sample_lambda is None or self.sample_lambda > 0, f"--sample-lambda must be > 0, not {self.sample_lambda}"),
            (self.warmup >= 0, f"--warmup must be >= 0, not {self.warmup}"),
            (0.0 < self.gce_q <= 1.0, f"--gce-q must be in (0, 1], not {self.gce_q}"),
            (self.penalty_lambda >= 0 and self.penalty_beta >= 0, "--penalty-lambda and --penalty-beta must be >= 0"),
            (0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), not {self.dropout}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, not {self.weight_decay}"),
            (self.lr > 0, f"--lr must be > 0, not {self.lr}"),
            (self.batch_size >= 2, f"--batch-size must be at least 2, not {self.batch_size}"),
            (self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}"),
            (self.patience is None or self.patience >= 1, f"--patience must be at least 1, not {self.patience}"),
            (self.precision in ("auto", "fp32", "bf16"), f"--precision must be auto, fp32 or bf16, not {self.precision}"),
            (self.image_size is None or self.image_size >= 8, f"--image-size must be at least 8, not {self.image_size}"),
            (self.workers >= 0, f"--workers must be >= 0, not {self.workers}"),
            (self.train_eval_every >= 0, f"--train-eval-every must be >= 0, not {self.train_eval_every}"),
            (self.test_every >= 0, f"--test-every must be >= 0 (0: only at a new best and the last epoch), not {self.test_every}"),
            (self.eval_batch_size >= 1, f"--eval-batch-size must be at least 1, not {self.eval_batch_size}"),
        ]
        for ok, message in checks:
            if not ok:
                raise LimitlabError(message)
        # the method exists, and every method option set is one it reads (limitlab.methods)
        from .methods import option_problem

        problem = option_problem(self)
        if problem:
            raise LimitlabError(problem)


# --------------------------------------------------------------------------- field types
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@functools.cache
def field_types() -> dict[str, tuple[tuple[type, ...], bool]]:
    """Field name -> (accepted types, whether None is allowed), from Config's annotations."""
    out = {}
    for name, hint in typing.get_type_hints(Config).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
            else (hint,)
        out[name] = (tuple(a for a in args if a is not type(None)), type(None) in args)
    return out


def check_field(name: str, value):
    """``value`` for Config field ``name`` if it has the field's type (an int is taken for a float
    field, as JSON writes 1.0 as 1), else LimitlabError naming the field and the expected type."""
    accepted, optional = field_types()[name]
    if value is None and optional:
        return value
    for t in accepted:
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer beyond any float
                raise LimitlabError(f"config field {name!r} is too large: {_short(value)}") from None
        if t is str and isinstance(value, str):
            return value
    expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in accepted) + (" or null" if optional else "")
    given = "null" if value is None else f"{_json_type(value)} {_short(value)}"
    raise LimitlabError(f"config field {name!r} must be {expected}, not {given}")


def _json_type(value) -> str:
    names = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _short(value) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
