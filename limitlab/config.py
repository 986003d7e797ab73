"""One typed config per run. Every field has a default; the run directory's ``config.json`` holds
it, and ``Config.load(path)`` re-creates the run from that file alone."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import LimitlabError


# --------------------------------------------------------------------------- declaring a field
# Each field is declared once, with what the rest of limitlab derives from it: the ``limitlab train``
# flag and its help (limitlab.cli_flags), the short form in sweep run names
# (limitlab.experiments.expand), the estimator's accepted ``method_options`` and the docs' CLI page.
# A field declared without ``setting`` (a plain default) still gets all of these: flag
# ``--field-name``, run-name part ``field-name``, group "method".
GROUPS = ("data", "method", "protocol", "runtime")


def setting(default, help: str, *, flag: str | None = None, short: str | None = None,
            parse: Callable[[str], object] | None = None, group: str = "method", estimator: bool = True):
    """A Config field with its help text, CLI flag (default ``--name-with-dashes``), short name in
    sweep run names (default ``name-with-dashes``; "" for none), parser of the flag's text (default:
    from the field's type), group, and whether ``LimitClassifier``'s ``method_options`` may set it
    (never for "data" fields)."""
    assert group in GROUPS, group
    return field(default=default, metadata={"help": help, "flag": flag, "short": short, "parse": parse,
                                            "group": group, "estimator": estimator and group != "data"})


def parse_optional_int(text: str) -> int | None:
    """An integer, or 'none'/'off'/'0' for None."""
    return None if text.lower() in ("none", "off", "0") else int(text)


def parse_optional_float(text: str) -> float | None:
    """A number, or 'none'/'off' for None."""
    return None if text.lower() in ("none", "off") else float(text)


def parse_tau(text: str) -> float | None:
    """--coteaching-tau: a number, or 'noise' for the run's known noise rate."""
    return None if text.lower() == "noise" else float(text)


def parse_size(text: str) -> int | None:
    """A number of examples, or 'all'/'none' for the whole split."""
    return None if text.lower() in ("none", "all") else int(text)


@dataclass
class Config:
    """Every setting of one run, with the paper protocol's defaults; saved as the run's ``config.json``."""

    # data (docs/method.md §5)
    dataset: str = setting("digits", "dataset: {datasets}", group="data")
    data_dir: str | None = setting(None, "folder holding <dataset>/ files (else $LIMITLAB_DATA, else ~/.cache/limitlab)",
                                   group="data")
    noise: str = setting("none", "label noise: {noise} (labels:FILE[:KEY] imports noisy labels for the official "
                                 "training set, e.g. labels:CIFAR-10_human.pt:aggre_label)", group="data")
    train_size: int | None = setting(None, "use only the first N examples of the shuffled training split "
                                           "('all': the whole split)", short="n", parse=parse_size, group="data")
    val_fraction: float = setting(0.2, "share of the official training set held out for validation", group="data")
    clean_validation: bool = setting(False, "validate on true labels instead of noisy ones (default: noisy "
                                            "validation, as in the paper)", group="data")
    label_column: str | None = setting(None, "table:FILE (.csv/.parquet): the column holding the labels "
                                             "(default: label)", group="data")
    id_column: str | None = setting(None, "table:FILE (.csv/.parquet): a column that identifies each row (not a "
                                          "feature; the key of each row in label_errors.csv)", group="data")
    # model and method (docs/method.md §2, §6; options per method: limitlab.methods)
    model: str | None = setting(None, "architecture: {models}, or your own network as package.module:factory, "
                                      "called factory(input_shape, num_classes) for each network (default: cnn4 for "
                                      "28×28 images, resnet34 for colour images up to 64×64, resnet50 above, mlp "
                                      "otherwise)", short="", group="data")
    method: str = setting("limit-l", "training method: {methods}")
    beta: float = setting(10.0, "weight of the predicted-gradient norm penalty β‖s(f) − s(q)‖²")
    sample_lambda: float | None = setting(
        None, "+S: give the classifier a sample around the predicted gradient (Gaussian std √(1/2λ) / Laplace "
              "scale 1/λ)", short="slambda", parse=parse_optional_float)
    warmup: int = setting(0, "epochs at the start in which only the q-network trains")
    grad_noise: str = setting("gaussian:0.1", "noise on each example's logit gradient, gaussian:SIGMA or "
                                              "laplace:SIGMA", short="")
    gce_q: float = setting(0.7, "the exponent q in (0, 1]", short="q")
    penalty_lambda: float = setting(1.0, "λ of ‖z‖²‖e_y − s(q)‖²", short="lambda")
    penalty_beta: float = setting(0.0, "β of ‖z‖²‖s(f) − s(q)‖²", short="pbeta")
    sce_alpha: float = setting(0.1, "weight α of the cross-entropy (Wang et al. 2019, CIFAR-10)")
    sce_beta: float = setting(1.0, "weight β of the reverse cross-entropy −Σ p log q (log 0 = −4)")
    nce_rce_alpha: float = setting(1.0, "weight α of the normalised cross-entropy (Ma et al. 2020, CIFAR-10)")
    nce_rce_beta: float = setting(1.0, "weight β of the reverse cross-entropy")
    elr_lambda: float = setting(3.0, "weight λ of the regulariser log(1 − ⟨t_i, p_i⟩) (Liu et al. 2020, CIFAR-10)")
    elr_beta: float = setting(0.7, "momentum β of the per-example targets t_i, in [0, 1)")
    sop_lr_u: float = setting(10.0, "SGD learning rate of the per-example u_i (Liu et al. 2022, CIFAR-10)")
    sop_lr_v: float = setting(10.0, "SGD learning rate of the per-example v_i")
    coteaching_tau: float | None = setting(
        0.2, "largest share τ of each batch left out, reached after 10 epochs; 'noise': the run's known noise rate",
        parse=parse_tau)
    bootstrap: str = setting("soft", "soft (the target mixes in the prediction) or hard (its argmax)")
    bootstrap_beta: float | None = setting(None, "weight β of the given label (default: 0.95 soft, 0.8 hard)",
                                           parse=parse_optional_float)
    ls_rate: float = setting(0.1, "smoothing rate r in [-1, 1); negative r is negative label smoothing")
    transition: str | None = setting(None, "a known K×K noise matrix T (.npy/.csv/.txt) instead of the estimate")
    init_from: str | None = setting(None, "a CE run directory: the classifier starts from its best checkpoint "
                                          "(fw, dmi)")
    q_init_from: str | None = setting(None, "'+': the q-network starts from this CE run's best classifier "
                                            "(weights and BatchNorm buffers)")
    dropout: float = setting(0.0, "dropout rate in the hidden layers")
    weight_decay: float = setting(0.0, "Adam weight decay", short="wd")
    # optimisation and protocol (docs/method.md §7)
    lr: float = setting(1e-3, "Adam learning rate (one optimizer over all networks)", group="protocol")
    batch_size: int = setting(256, "training batch size", short="bs", group="protocol")
    epochs: int = setting(400, "maximum number of epochs", group="protocol")
    patience: int | None = setting(100, "stop after this many epochs without a better validation accuracy "
                                        "('none' or 0: never stop early)", group="protocol")
    seed: int = setting(0, "seed of the split, the label noise, the initialisation and the batch order",
                        group="protocol")
    device: str = setting("auto", "auto (cuda when available), cpu, cuda, cuda:N", group="runtime")
    precision: str = setting("auto", "auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16", group="runtime")
    compile: bool = setting(False, "torch.compile the training step (worth it on GPUs; minutes of start-up on CPU)",
                            group="runtime", estimator=False)
    image_size: int | None = setting(None, "image-file datasets: crop size, after resizing the shorter side to 8/7 "
                                           "of it (default: the dataset's, 224)", group="data")
    workers: int = setting(4, "loader processes for image-file datasets (clothing1m, imagefolder)", group="data")
    pretrained: bool = setting(False, "start resnet50 from ImageNet weights (needs torchvision: pip install "
                                      "'limitlab[pretrained]')", estimator=False)
    train_eval_every: int = setting(1, "pass over the training set for the memorization metrics every k epochs "
                                       "(0: never; large datasets)", group="protocol")
    # 1024: fastest for cnn4 and mlp on CPU (benchmarks/speed.py, RESULTS.md)
    eval_batch_size: int = setting(1024, "batch size of the evaluation passes (lower it for large images on a small "
                                         "GPU)", group="runtime")
    test_every: int = setting(0, "also a test-set pass every k epochs, for per-epoch test curves (0: only at a new "
                                 "best validation epoch and at the last epoch, all that the reported test accuracy "
                                 "needs)", group="protocol", estimator=False)

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
            (min(self.sce_alpha, self.sce_beta, self.nce_rce_alpha, self.nce_rce_beta) >= 0,
             "--sce-alpha, --sce-beta, --nce-rce-alpha and --nce-rce-beta must be >= 0"),
            (self.elr_lambda >= 0, f"--elr-lambda must be >= 0, not {self.elr_lambda}"),
            (0.0 <= self.elr_beta < 1.0, f"--elr-beta must be in [0, 1), not {self.elr_beta}"),
            (self.sop_lr_u >= 0 and self.sop_lr_v >= 0, "--sop-lr-u and --sop-lr-v must be >= 0"),
            (self.coteaching_tau is None or 0.0 <= self.coteaching_tau < 1.0,
             f"--coteaching-tau must be in [0, 1) or 'noise' (the known noise rate), not {self.coteaching_tau}"),
            (self.bootstrap in ("soft", "hard"), f"--bootstrap must be soft or hard, not {self.bootstrap!r}"),
            (self.bootstrap_beta is None or 0.0 <= self.bootstrap_beta <= 1.0,
             f"--bootstrap-beta must be in [0, 1], not {self.bootstrap_beta}"),
            (-1.0 <= self.ls_rate < 1.0, f"--ls-rate must be in [-1, 1), not {self.ls_rate}"),
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


# --------------------------------------------------------------------------- what derives from the fields
@dataclass(frozen=True)
class FieldInfo:
    """One Config field as the CLI, sweeps and the estimator see it."""

    name: str
    help: str
    flag: str
    short: str
    parse: Callable[[str], object] | None  # None: a switch (bool field)
    group: str
    estimator: bool  # LimitClassifier's method_options may set it
    default: object


def _default_parser(name: str) -> Callable[[str], object] | None:
    accepted, optional = field_types()[name]
    if accepted == (bool,):
        return None
    if optional and accepted == (int,):
        return parse_optional_int
    if optional and accepted == (float,):
        return parse_optional_float
    return accepted[0]


def field_infos() -> list[FieldInfo]:
    """Every Config field with its help, flag, short name, parser and group, in declaration order
    (computed each call, so a field added at run time, e.g. by a plug-in method, is seen)."""
    out = []
    for f in dataclasses.fields(Config):
        meta, dashed = f.metadata, f.name.replace("_", "-")
        out.append(FieldInfo(
            name=f.name, help=meta.get("help", ""), flag=meta.get("flag") or f"--{dashed}",
            short=dashed if meta.get("short") is None else meta["short"],
            parse=meta.get("parse") or _default_parser(f.name), group=meta.get("group", "method"),
            estimator=meta.get("estimator", True),
            default=f.default if f.default is not dataclasses.MISSING else f.default_factory()))
    return out


def add_field(name: str, annotation: str, spec) -> None:
    """Add a field to :class:`Config` at run time: the way a method defined outside limitlab (a
    plug-in) declares its hyperparameter, e.g. ``add_field("my_alpha", "float", setting(0.1, "my method's α"))``.
    ``annotation`` is the type as written in a class body. The new field then has a flag, a run-name
    part, a type check and a place in the estimator's ``method_options`` like any other."""
    if name in Config.__dataclass_fields__ or not name.isidentifier():
        raise ValueError(f"Config already has a field {name!r}" if name.isidentifier() else f"bad field name {name!r}")
    Config.__annotations__[name] = annotation
    setattr(Config, name, spec)
    _rebuild()


def remove_field(name: str) -> None:
    """Undo :func:`add_field` (tests)."""
    del Config.__annotations__[name]
    del Config.__dataclass_fields__[name]
    delattr(Config, name)
    _rebuild()


def _rebuild() -> None:
    """Re-run the dataclass machinery on Config after its fields changed."""
    for f in dataclasses.fields(Config):
        setattr(Config, f.name, f)  # the declarations again, so their metadata stays
    for attr in ("__init__", "__repr__", "__eq__", "__match_args__", "__dataclass_fields__", "__dataclass_params__"):
        if attr in Config.__dict__:
            delattr(Config, attr)
    dataclass(Config)
    field_types.cache_clear()
