"""The parameters of :class:`limitlab.LimitClassifier`: their checks (one sentence naming the
parameter), the run's :class:`Config` built from them (``method_options`` through the Config fields'
type checks), the seed, and the networks the ``module`` parameter names."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .budget import Budget
from .config import Config, check_field, field_infos
from .errors import LimitlabError
from .factories import build_from_factory, is_factory_spec, load_factory
from .methods import METHODS
from .models import MODELS, build_model, default_model

# Config fields that are LimitClassifier parameters of their own (not method_options).
OWN = ("method", "beta", "epochs", "patience", "batch_size", "lr", "weight_decay", "device", "seed")
# The prefix by which GridSearchCV (set_params) reaches one method option: method_options__warmup.
OPTION_PREFIX = "method_options__"


def is_int(v) -> bool:
    """An integer (numpy's too), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def option_names() -> list[str]:
    """The Config fields ``method_options`` may set: every field declared for it (not the data's,
    nor what the estimator does not run: compile, test passes) but the estimator's own parameters."""
    return [i.name for i in field_infos() if i.estimator and i.name not in OWN]


def check_params(est) -> None:
    """ValueError (one sentence naming the parameter) for a bad estimator parameter."""
    checks = [
        (isinstance(est.method, str) and est.method in METHODS,
         f"method must be one of {', '.join(METHODS)}, not {est.method!r}"),
        (est.epochs == "auto" or is_int(est.epochs) and est.epochs >= 1,
         f"epochs must be 'auto' or an integer >= 1, not {est.epochs!r}"),
        (est.patience is None or est.patience == "auto" or is_int(est.patience) and est.patience >= 1,
         f"patience must be 'auto', None or an integer >= 1, not {est.patience!r}"),
        (est.validation_fraction == "auto"
         or isinstance(est.validation_fraction, (int, float)) and 0 <= est.validation_fraction < 1,
         f"validation_fraction must be in [0, 1) or 'auto', not {est.validation_fraction!r}"),
        (est.batch_size == "auto" or is_int(est.batch_size) and est.batch_size >= 2,
         f"batch_size must be 'auto' or an integer >= 2, not {est.batch_size!r}"),
        (est.lr == "auto" or isinstance(est.lr, (int, float)) and not isinstance(est.lr, bool) and est.lr > 0,
         f"lr must be 'auto' or a number > 0, not {est.lr!r}"),
        (isinstance(est.weight_decay, (int, float)) and est.weight_decay >= 0,
         f"weight_decay must be >= 0, not {est.weight_decay!r}"),
        (isinstance(est.beta, (int, float)) and est.beta >= 0, f"beta must be >= 0, not {est.beta!r}"),
        (est.method_options is None or isinstance(est.method_options, dict),
         f"method_options must be a dict of Config fields or None, not {type(est.method_options).__name__}"),
        (not isinstance(est.module, nn.Module),
         "module must be a factory (input_shape, num_classes) -> nn.Module, a model name or "
         "'package.module:factory', not a network instance (LIMIT needs two fresh networks)"),
        (est.random_state is None or isinstance(est.random_state, np.random.RandomState)
         or is_int(est.random_state) and 0 <= est.random_state < 2 ** 32,
         f"random_state must be None, an integer in [0, 2**32 - 1] or a numpy RandomState, not {est.random_state!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def make_config(est, seed: int, plan: Budget, with_truth: bool) -> Config:
    """The run's Config: the sizes of ``plan`` (:func:`limitlab.budget.resolve`), the estimator's
    other parameters and its ``method_options``, each value checked against its field's type (one
    sentence naming the field). The pass over the training split only measures memorization: it
    runs with true labels (``with_truth``) or when ``method_options`` asks for it."""
    options = dict(est.method_options or {})
    allowed = option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"method_options has unknown or estimator-level key(s) {', '.join(map(str, unknown))}; "
                         f"the keys are Config fields: {', '.join(allowed)}")
    try:
        options = {k: check_field(k, v) for k, v in options.items()}
    except LimitlabError as e:
        raise ValueError(str(e).replace("config field", "method_options field", 1)) from None
    if "beta" in METHODS.get(est.method).options:  # other methods refuse a beta they do not read
        options["beta"] = float(est.beta)
    config = Config(**{"eval_batch_size": max(1024, plan.batch_size), "train_eval_every": 1 if with_truth else 0,
                       **options, "method": est.method, "epochs": plan.epochs, "patience": plan.patience,
                       "batch_size": plan.batch_size, "lr": plan.lr, "weight_decay": float(est.weight_decay),
                       "seed": seed})
    config.validate()
    return config


def seed_of(random_state) -> int:
    """The run's seed: ``random_state`` itself, or a draw from it (scikit-learn's convention)."""
    if is_int(random_state):
        return int(random_state)
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def module_name(module) -> str:
    """How messages name the network ``module`` gives."""
    if isinstance(module, str):
        return module
    return "the default network" if module is None else getattr(module, "__name__", repr(module))


def is_users_network(module) -> bool:
    """A network of the user's: a callable or a ``package.module:factory`` string."""
    return module is not None and not (isinstance(module, str) and not is_factory_spec(module))


def model_builder(module, method: str, input_shape: tuple[int, ...], num_classes: int, dropout: float,
                  plan: Budget | None = None):
    """``make_model(role, head_bias=True)`` for the networks ``module`` names; the default network
    for rows of features (``module=None``) is an MLP of ``plan``'s width and depth."""
    if not is_users_network(module):
        name = module or (default_model(input_shape) if len(input_shape) == 3 else "mlp")
        if name not in MODELS:
            raise ValueError(f"module {name!r} is not a registered model ({', '.join(MODELS)}) nor "
                             "'package.module:factory'")
        sized = {"width": plan.width, "depth": plan.depth} if plan and module is None and name == "mlp" else {}

        def make_model(role, head_bias=True):
            return build_model(name, input_shape, num_classes, role=role, dropout=dropout, head_bias=head_bias,
                               **sized)
        return make_model
    factory = load_factory(module) if isinstance(module, str) else module
    if not callable(factory):
        raise ValueError(f"module must be None, a model name, 'package.module:factory' or a callable, not {module!r}")

    def make_model(role, head_bias=True):
        if not head_bias:
            raise ValueError(f"method {method} needs a network with forward_features() and a bias-free "
                             "head; use a registered model (module=None or a name)")
        return build_from_factory(factory, input_shape, num_classes, module_name(module))
    return make_model


def tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """``a`` as a tensor on ``device``."""
    # torch needs writable memory; read-only inputs (memory maps, some pandas arrays) are copied
    return torch.as_tensor(np.require(a, requirements=("C", "W")), device=device)
