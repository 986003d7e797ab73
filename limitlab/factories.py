"""Your own network: ``--model package.module:factory`` (and ``Config.model``, sweep grids, and the
estimator's ``module``).

The factory is called as ``factory(input_shape, num_classes)`` once for each network a method needs
(LIMIT: the classifier and the q-network) and must return a fresh ``nn.Module`` mapping a batch
[B, *input_shape] to logits [B, num_classes]. The run records the string, so ``--resume`` and
``limitlab detect`` rebuild the same networks. Its output shape is checked on one batch before
anything is written.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable

import torch
from torch import nn

from .errors import LimitlabError, first_line


def is_factory_spec(name) -> bool:
    """True for ``package.module:factory`` strings (registered model names have no colon)."""
    return isinstance(name, str) and ":" in name


def load_factory(spec: str) -> Callable[..., nn.Module]:
    """Import ``package.module:factory`` (``factory`` may be dotted, e.g. ``Class.create``).

    The current folder is searched too, as ``python -m`` would, so a ``nets.py`` beside the data works
    with the ``limitlab`` command. Raises LimitlabError (one sentence) when the module cannot be
    imported or the name is missing or not callable.
    """
    module_name, _, attr = spec.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".") + attr.split(".")):
        raise LimitlabError(f"--model {spec!r} is not package.module:factory (e.g. mynets:small_cnn)")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised while the module runs
        raise LimitlabError(f"--model {spec}: cannot import {module_name} ({first_line(e)}); make it importable "
                            "(installed, on PYTHONPATH, or in the current folder)") from None
    finally:
        if added:
            sys.path.remove(cwd)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LimitlabError(f"--model {spec}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj) or isinstance(obj, nn.Module):
        raise LimitlabError(f"--model {spec}: {attr} must be a function (input_shape, num_classes) -> nn.Module")
    return obj


def build_from_factory(factory: Callable[..., nn.Module], input_shape: tuple[int, ...], num_classes: int,
                       name: str) -> nn.Module:
    """``factory(input_shape, num_classes)``, checked to be an ``nn.Module``; ``name`` names it in errors."""
    try:
        model = factory(tuple(input_shape), num_classes)
    except Exception as e:
        raise LimitlabError(f"model {name} failed when called as factory({tuple(input_shape)}, {num_classes}): "
                            f"{first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise LimitlabError(f"model {name} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


@torch.no_grad()
def check_output_shape(model: nn.Module, x: torch.Tensor, num_classes: int, name: str) -> None:
    """Run ``model`` on the batch ``x`` in eval mode (no statistics updated, no random numbers drawn)
    and check that it returns logits [len(x), num_classes]."""
    was_training = model.training
    model.eval()
    try:
        out = model(x)
    except Exception as e:
        raise LimitlabError(f"model {name} fails on a batch of inputs of shape {tuple(x.shape)}: "
                            f"{first_line(e)}") from None
    finally:
        model.train(was_training)
    want = (len(x), num_classes)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise LimitlabError(f"model {name} returns {got} for a batch of inputs of shape {tuple(x.shape)}, but must "
                            f"return logits of shape {want} (batch, number of classes)")
