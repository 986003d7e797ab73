"""The training methods (``--method``), each registered once with everything the rest of limitlab
needs to know about it: how to build its objective, the Config fields it reads, its main
hyperparameter and the paper's grid for it, its label in reports, whether it starts from a CE run,
and preparation work (FW's transition estimate).

Sweep names, report selection and order, ``--method`` help, the validation of method options and
``limitlab detect``'s rebuild of a run are all derived from :data:`METHODS`. Adding a method is one
``@register_method`` here (plus, if it needs a new kind of objective, its ``nn.Module`` in
:mod:`limitlab.objectives`)::

    @register_method("my-loss", description="my loss on the logits", label="mine")
    def _my_loss(make_model, config, context):
        from .objectives import LossOnLogits
        return LossOnLogits(make_model("classifier"), my_loss, "my_loss")

A builder gets ``make_model(role, head_bias=True)``, which builds a fresh network of the run's
architecture (role ``"classifier"`` or ``"q"``), the run's Config, and the ``context`` its
``prepare`` hook returned, with the run's ``num_train`` and ``num_classes`` (for per-example
state). This module does not import torch; the builders import it when called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .registry import Registry, decorator


@dataclass(frozen=True)
class MethodSpec:
    """One training method.

    Attributes
    ----------
    name, description : str
        ``--method`` value and its one-line help.
    build : callable
        ``build(make_model, config, context) -> Objective``.
    options : tuple of str
        Config fields this method reads besides the general ones (lr, dropout, weight decay,
        init_from, …); any other method option set away from its default is refused.
    main : str or None
        The main hyperparameter: always shown in run names.
    grid : dict
        The paper's grid (Config field → values) for this method's presets.
    label : str or None
        Name in reports (default: ``name``).
    starts_from_ce : bool
        The paper fine-tunes it from the CE run's best checkpoint (presets set ``init_from: "@ce"``).
    has_q_network : bool
        Its objective has a ``q_network`` (LIMIT's label-aware predictor).
    idle_parameters : callable
        ``idle_parameters(config) -> bool``: some parameters get no gradient in some epochs (LIMIT's
        warm-up), which DDP must be told.
    prepare : callable or None
        ``prepare(config, data, make_model, init_state, predict_proba) -> (context, extras)``: work
        before the objective is built; ``extras`` are arrays saved as ``NAME.csv`` in the run directory.
    check : callable or None
        ``check(config) -> str | None``: a one-sentence problem with the config, else None.
    recipe : dict
        Its paper's CIFAR settings (Config overrides: epochs, batch size) for its own CIFAR-10 and
        CIFAR-10N presets; a method with a recipe stays out of the LIMIT paper's tables.
    """

    name: str
    description: str
    build: Callable
    options: tuple[str, ...] = ()
    main: str | None = None
    grid: dict = field(default_factory=dict)
    label: str | None = None
    starts_from_ce: bool = False
    has_q_network: bool = False
    idle_parameters: Callable[[Any], bool] = lambda config: False
    prepare: Callable | None = None
    check: Callable[[Any], str | None] | None = None
    recipe: dict = field(default_factory=dict)


METHODS: Registry[MethodSpec] = Registry("method", "--method")
register_method = decorator(METHODS, MethodSpec)

# The paper's grids (the reference code's scripts/generate_commands.py).
BETAS = (0, 0.1, 0.3, 1, 3, 10, 30, 100)
LIMIT_OPTIONS = ("beta", "sample_lambda", "warmup", "q_init_from")


@register_method("ce", description="cross-entropy on the noisy labels", label="CE")
def _ce(make_model, config, context):
    from .objectives import CrossEntropy
    return CrossEntropy(make_model("classifier"))


@register_method("ce-gn", description="CE with Gaussian/Laplace noise of std σ on each example's logit gradient",
                 options=("grad_noise",), main="grad_noise",
                 grid={"grad_noise": tuple(f"{d}:{s}" for d in ("gaussian", "laplace") for s in (0.01, 0.03, 0.1, 0.3))},
                 check=lambda c: _grad_noise_problem(c.grad_noise))
def _ce_gn(make_model, config, context):
    from .objectives import GradientNoiseCE
    return GradientNoiseCE(make_model("classifier"), *parse_grad_noise(config.grad_noise))


@register_method("mae", description="mean absolute error ‖e_y − s(f)‖₁")
def _mae(make_model, config, context):
    from .losses import mae_loss
    from .objectives import LossOnLogits
    return LossOnLogits(make_model("classifier"), mae_loss, "mae")


@register_method("gce", description="generalized cross-entropy (1 − s(f)_y^q)/q", options=("gce_q",), main="gce_q",
                 grid={"gce_q": (0.4, 0.7, 1.0)})
def _gce(make_model, config, context):
    from functools import partial

    from .losses import gce_loss
    from .objectives import LossOnLogits
    return LossOnLogits(make_model("classifier"), partial(gce_loss, q=config.gce_q), "gce")


def _fw_prepare(config, data, make_model, init_state, predict_proba):
    """FW's transition matrix: the known one (``--transition``), or Patrini et al.'s estimate from
    the softmax of the ``--init-from`` CE model on the training set."""
    import torch

    from . import losses, noise
    from .models import load_weights

    if config.transition:
        t = noise.load_transition(config.transition, data.num_classes)
    else:
        ce_model = make_model("classifier")
        load_weights(ce_model, init_state, f"--init-from {config.init_from}")
        t = losses.estimate_transition(predict_proba(ce_model))
    return {"transition": torch.as_tensor(t, dtype=torch.float32, device=data.scale.device)}, {"fw_transition": t}


@register_method("fw", description="forward correction −log((s(f)ᵀT)_y); T estimated from the --init-from CE run, "
                                   "or --transition FILE", options=("transition",), label="FW", starts_from_ce=True,
                 prepare=_fw_prepare,
                 check=lambda c: None if c.init_from or c.transition else
                 "--method fw needs --init-from CE_RUN_DIR (T is estimated from that model) or --transition FILE")
def _fw(make_model, config, context):
    from functools import partial

    from .losses import forward_corrected_loss
    from .objectives import LossOnLogits
    return LossOnLogits(make_model("classifier"), partial(forward_corrected_loss, transition=context["transition"]),
                        "fw")


@register_method("dmi", description="DMI −log(|det(EᵀP)| + 1e-3), fine-tuned from a CE run (--init-from, set --lr)",
                 main="lr", grid={"lr": (1e-3, 1e-4, 1e-5, 1e-6)}, label="DMI", starts_from_ce=True)
def _dmi(make_model, config, context):
    from .losses import dmi_loss
    from .objectives import LossOnLogits
    return LossOnLogits(make_model("classifier"), dmi_loss, "dmi")


@register_method("penalize", description="soft regularization: CE + λ‖z‖²‖e_y − s(q)‖² (+ β‖z‖²‖s(f) − s(q)‖²)",
                 options=("penalty_lambda", "penalty_beta"), main="penalty_lambda",
                 grid={"penalty_lambda": (0.001, 0.01, 0.03, 0.1), "penalty_beta": (0, 0.01, 0.1, 1, 10)},
                 has_q_network=True)
def _penalize(make_model, config, context):
    from .objectives import Penalize
    return Penalize(make_model("classifier", head_bias=False), make_model("q"), config.penalty_lambda,
                    config.penalty_beta)


def _limit(q_dist: str) -> Callable:
    def build(make_model, config, context):
        from .objectives import LimitObjective
        # The "+" variant: q starts from a CE classifier, so it takes the classifier's architecture.
        q = make_model("classifier" if config.q_init_from else "q")
        return LimitObjective(make_model("classifier"), q, q_dist, config.beta, config.sample_lambda, config.warmup)
    return build


for _q, _text in (("g", "LIMIT_G: classifier trained by q's predicted gradient, Gaussian q loss (+β penalty)"),
                  ("l", "LIMIT_L: as limit-g with the Laplace (absolute error) q loss")):
    register_method(f"limit-{_q}", description=_text, options=LIMIT_OPTIONS, main="beta", grid={"beta": BETAS},
                    label=f"LIMIT_{_q.upper()}", has_q_network=True,
                    idle_parameters=lambda c: c.warmup > 0)(_limit("gaussian" if _q == "g" else "laplace"))


# ------------------------------------------------------------------ the methods compared against today
# (docs/method.md, "Methods compared today"); losses in limitlab.robust_losses, stateful objectives in
# limitlab.objectives_state. Recipes: the papers' CIFAR epochs and batch size (the loop keeps its Adam).
def _on_logits(loss_fn, name: str, make_model):
    from .objectives import LossOnLogits
    return LossOnLogits(make_model("classifier"), loss_fn, name)


@register_method("sce", description="symmetric cross-entropy α·CE + β·RCE, log 0 = −4 (Wang et al. 2019)",
                 options=("sce_alpha", "sce_beta"), main="sce_alpha", label="SCE",
                 grid={"sce_alpha": (0.01, 0.1, 0.5, 1.0), "sce_beta": (0.5, 1.0)},
                 recipe={"epochs": 120, "batch_size": 128})
def _sce(make_model, config, context):
    from functools import partial

    from .robust_losses import sce_loss
    return _on_logits(partial(sce_loss, alpha=config.sce_alpha, beta=config.sce_beta), "sce", make_model)


@register_method("nce-rce", description="active-passive loss α·NCE + β·RCE (Ma et al. 2020)",
                 options=("nce_rce_alpha", "nce_rce_beta"), main="nce_rce_alpha", label="NCE+RCE",
                 grid={"nce_rce_alpha": (0.1, 1.0, 10.0), "nce_rce_beta": (0.1, 1.0)},
                 recipe={"epochs": 120, "batch_size": 128})
def _nce_rce(make_model, config, context):
    from functools import partial

    from .robust_losses import nce_rce_loss
    return _on_logits(partial(nce_rce_loss, alpha=config.nce_rce_alpha, beta=config.nce_rce_beta), "nce_rce",
                      make_model)


@register_method("elr", description="early-learning regularisation CE + λ·log(1 − ⟨t_i, p_i⟩), t_i running "
                                    "averages of the predictions (Liu et al. 2020)",
                 options=("elr_lambda", "elr_beta"), main="elr_lambda", label="ELR",
                 grid={"elr_lambda": (1, 3, 5, 7), "elr_beta": (0.5, 0.7, 0.9)},
                 recipe={"epochs": 120, "batch_size": 128})
def _elr(make_model, config, context):
    from .objectives_state import ELR, refuse_distributed
    refuse_distributed("elr")
    return ELR(make_model("classifier"), context["num_train"], context["num_classes"], config.elr_lambda,
               config.elr_beta)


@register_method("sop", description="sparse over-parameterisation: per-example u_i, v_i model the noise, own SGD "
                                    "(Liu et al. 2022)",
                 options=("sop_lr_u", "sop_lr_v"), main="sop_lr_u", label="SOP",
                 grid={"sop_lr_u": (1, 10, 100), "sop_lr_v": (1, 10, 100)},
                 recipe={"epochs": 300, "batch_size": 128})
def _sop(make_model, config, context):
    from .objectives_state import SOP, refuse_distributed
    refuse_distributed("sop")
    return SOP(make_model("classifier"), context["num_train"], context["num_classes"], config.sop_lr_u,
               config.sop_lr_v)


def _coteaching_prepare(config, data, make_model, init_state, predict_proba):
    """The run's known noise rate (the share of wrong training labels), for ``--coteaching-tau noise``."""
    return {"noise_rate": float(data.record["train_rate"])}, {}


@register_method("coteaching", description="Co-teaching: two networks train each other on their small-loss "
                                           "examples, dropping up to τ of each batch (Han et al. 2018)",
                 options=("coteaching_tau",), main="coteaching_tau", label="Co-teaching",
                 grid={"coteaching_tau": (0.1, 0.2, 0.4, 0.6, 0.8)}, prepare=_coteaching_prepare,
                 check=lambda c: "--coteaching-tau noise takes τ from the known noise rate, but --noise none has none; "
                                 "give τ as a number" if c.coteaching_tau is None and c.noise == "none" else None,
                 recipe={"epochs": 200, "batch_size": 128})
def _coteaching(make_model, config, context):
    from .errors import LimitlabError
    from .objectives_state import CoTeaching

    tau = config.coteaching_tau
    if tau is None:
        if "noise_rate" not in context:
            raise LimitlabError("coteaching_tau None (the known noise rate) needs a run whose noise rate is known; "
                                "give τ as a number")
        tau = min(context["noise_rate"], 0.99)
    return CoTeaching(make_model("classifier"), make_model("classifier"), tau)


BOOTSTRAP_BETAS = {"soft": 0.95, "hard": 0.8}


@register_method("bootstrap", description="bootstrapping −Σ(β e_y + (1 − β) z)·log p, z = p (soft, β 0.95) or "
                                          "onehot(argmax p) (hard, β 0.8) (Reed et al. 2015)",
                 options=("bootstrap", "bootstrap_beta"), main="bootstrap_beta", label="Bootstrap",
                 grid={"bootstrap_beta": (0.8, 0.9, 0.95)}, recipe={"epochs": 120, "batch_size": 128})
def _bootstrap(make_model, config, context):
    from functools import partial

    from .robust_losses import bootstrap_loss
    beta = BOOTSTRAP_BETAS[config.bootstrap] if config.bootstrap_beta is None else config.bootstrap_beta
    return _on_logits(partial(bootstrap_loss, beta=beta, hard=config.bootstrap == "hard"), "bootstrap", make_model)


@register_method("ls", description="label smoothing CE against (1 − r)·e_y + r/K, r in [−1, 1), negative r included "
                                   "(Wei et al. 2022)",
                 options=("ls_rate",), main="ls_rate", label="LS",
                 grid={"ls_rate": (0.8, 0.6, 0.4, 0.2, 0.0, -0.2, -0.4, -0.6, -0.8, -1.0)},
                 recipe={"epochs": 200, "batch_size": 128})
def _ls(make_model, config, context):
    from functools import partial

    from .robust_losses import label_smoothing_loss
    return _on_logits(partial(label_smoothing_loss, rate=config.ls_rate), "ls", make_model)


# ------------------------------------------------------------------------------------ derived facts
def option_fields() -> tuple[str, ...]:
    """Every Config field that some method reads as its own option, in registration order."""
    out: list[str] = []
    for spec in METHODS.specs():
        out += [f for f in spec.options if f not in out]
    return tuple(out)


# Options that make a variant of a method (a run it starts from, a known matrix, a schedule) rather than a
# hyperparameter value: reports keep them apart as cells instead of selecting among them.
VARIANT_OPTIONS = ("q_init_from", "transition", "warmup", "bootstrap")


def hyperparameter_fields() -> tuple[str, ...]:
    """The fields selected per table cell on noisy validation: every method's tuned options, then
    the general ones (lr, dropout, weight decay)."""
    return (*(f for f in option_fields() if f not in VARIANT_OPTIONS), "lr", "dropout", "weight_decay")


def readers(field_name: str) -> list[str]:
    """The methods that read option ``field_name``."""
    return [s.name for s in METHODS.specs() if field_name in s.options]


def option_problem(config) -> str | None:
    """One sentence if ``config`` sets an option its method does not read, or fails the method's
    own check; else None. Options are compared with the Config defaults."""
    spec = METHODS.get(config.method)
    defaults = type(config)()
    unread = [f for f in option_fields() if f not in spec.options and getattr(config, f) != getattr(defaults, f)]
    if unread:
        flags = ", ".join("--" + f.replace("_", "-") for f in unread)
        own = ", ".join("--" + f.replace("_", "-") for f in spec.options) or "none"
        return (f"{flags} {'is' if len(unread) == 1 else 'are'} not read by --method {spec.name} "
                f"(its own options: {own}); drop {'it' if len(unread) == 1 else 'them'} or choose another method")
    return spec.check(config) if spec.check else None


def method_label(config: dict) -> str:
    """A run's method as reports show it: ``limit-g+`` (q from a CE run), ``limit-l +S`` (sampled
    gradient), ``mae (from CE)`` (a method that normally starts from scratch, started from CE)."""
    spec = METHODS.get(config["method"]) if config["method"] in METHODS else None
    label = config["method"] + ("+" if config.get("q_init_from") else "")
    if config.get("sample_lambda") is not None:
        label += " +S"
    if config.get("init_from") and not (spec and spec.starts_from_ce):
        label += " (from CE)"
    return label


def _grad_noise_problem(spec: str) -> str | None:
    dist, _, value = str(spec).partition(":")
    try:
        sigma = float(value)
    except ValueError:
        sigma = -1.0
    if dist not in ("gaussian", "laplace") or not sigma >= 0:
        return (f"--grad-noise {spec!r} is not DIST:SIGMA with DIST gaussian or laplace and SIGMA >= 0, "
                "e.g. gaussian:0.1")
    return None


def parse_grad_noise(spec: str) -> tuple[str, float]:
    """``gaussian:0.1`` / ``laplace:0.1`` → (distribution, σ)."""
    from .errors import LimitlabError

    problem = _grad_noise_problem(spec)
    if problem:
        raise LimitlabError(problem)
    dist, _, value = spec.partition(":")
    return dist, float(value)


def build_objective(method: str, make_model: Callable, config, context: dict | None = None):
    """Build the objective of ``method`` with networks from ``make_model`` and options from ``config``."""
    return METHODS.get(method).build(make_model, config, context or {})
