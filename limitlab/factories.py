"""Your own network: ``--model package.module:factory`` (and ``Config.model``, sweep grids, and the
estimator's ``module``).

The factory is called as ``factory(input_shape, num_classes)`` once for each network a method needs
(LIMIT: the classifier and the q-network) and must return a fresh ``nn.Module`` mapping a batch
[B, *input_shape] to floating-point logits [B, num_classes], in training and in eval mode, with
trainable parameters of its own (not shared with a network it returned before). The run records the
string, so ``--resume`` and ``limitlab detect`` rebuild the same networks. All this is checked on one
batch before anything is written.
"""

from __future__ import annotations

import importlib
import os
import sys
import weakref
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


# The trainable parameters of every network a factory returned (id -> weak reference), so that a factory
# handing out the same network, or a trainable layer of one, twice is caught: LIMIT's classifier and
# q-network would silently share weights. Weak: nothing is kept alive.
_RETURNED: dict[int, weakref.ref] = {}


def _shares_trained_weights(model: nn.Module) -> bool:
    return any((ref := _RETURNED.get(id(p))) is not None and ref() is p for p in model.parameters() if p.requires_grad)


def _remember(model: nn.Module) -> None:
    for p in model.parameters():
        if p.requires_grad:
            _RETURNED[id(p)] = weakref.ref(p, lambda _, key=id(p): _RETURNED.pop(key, None))


def build_from_factory(factory: Callable[..., nn.Module], input_shape: tuple[int, ...], num_classes: int,
                       name: str) -> nn.Module:
    """``factory(input_shape, num_classes)``, checked to be a new ``nn.Module`` with trainable
    parameters; ``name`` names it in errors."""
    try:
        model = factory(tuple(input_shape), num_classes)
    except Exception as e:
        raise LimitlabError(f"model {name} failed when called as factory({tuple(input_shape)}, {num_classes}): "
                            f"{first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise LimitlabError(f"model {name} returned a {type(model).__name__}, not a torch.nn.Module")
    if not any(p.requires_grad for p in model.parameters()):
        raise LimitlabError(f"model {name} returned a network without trainable parameters, so there is nothing to "
                            "train; keep its layers as attributes of the module (or in an nn.ModuleList), not in a "
                            "plain list, and leave requires_grad on")
    if _shares_trained_weights(model):
        raise LimitlabError(f"model {name} returned a network (or a trainable layer of one) that it had already "
                            "returned, so two networks (e.g. LIMIT's classifier and q-network) would share weights; "
                            "build a new network inside the factory on every call (a shared frozen layer is fine)")
    _remember(model)
    return model


def _forward(model: nn.Module, x: torch.Tensor, training: bool, name: str):
    """``model(x)`` in training or eval mode, leaving the model as it was: its mode, its buffers
    (BatchNorm statistics) and the random number generators (dropout)."""
    was_training = model.training
    saved = {k: b.clone() for k, b in model.named_buffers()} if training else {}
    try:
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            model.train(training)
            return model(x)
    except Exception as e:
        mode = " in training mode (model.train())" if training else ""
        raise LimitlabError(f"model {name} fails{mode} on a batch of inputs of shape {tuple(x.shape)}: "
                            f"{first_line(e)}") from None
    finally:
        model.train(was_training)
        for k, b in model.named_buffers():
            if k in saved:
                b.copy_(saved[k])


@torch.no_grad()
def check_output_shape(model: nn.Module, x: torch.Tensor, num_classes: int, name: str) -> None:
    """Run ``model`` on the batch ``x`` in eval mode, then (for a batch of two or more) in training
    mode, leaving no trace (statistics restored, random numbers drawn from a forked generator), and
    check that it returns floating-point logits [len(x), num_classes] both times."""
    want = (len(x), num_classes)
    for training in (False, True) if len(x) > 1 else (False,):
        out = _forward(model, x, training, name)
        mode = " in training mode (model.train())" if training else ""
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise LimitlabError(f"model {name} returns {got}{mode} for a batch of inputs of shape {tuple(x.shape)}, "
                                f"but must return logits of shape {want} (batch, number of classes)"
                                + (" in training mode as in eval mode" if training else ""))
        if not out.is_floating_point():
            raise LimitlabError(f"model {name} returns {str(out.dtype).replace('torch.', '')} logits{mode}, but they "
                                "must be floating-point scores (before softmax), not class indices or rounded values")
