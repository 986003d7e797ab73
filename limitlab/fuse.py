"""The evaluation copy of a trained network with each BatchNorm folded into the layer before it."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .architectures import BasicBlock, Bottleneck, ResNet


def _fuse_pair(layer: nn.Module, bn: nn.Module) -> nn.Module | None:
    """``layer`` followed by ``bn`` as one layer, or None when they are not a Conv2d/Linear + BatchNorm pair."""
    if not isinstance(bn, _BatchNorm) or not bn.track_running_stats or bn.running_mean is None:
        return None
    if isinstance(layer, nn.Conv2d):
        return fuse_conv_bn_eval(layer, bn)
    if isinstance(layer, nn.Linear) and layer.out_features == bn.num_features:
        return fuse_linear_bn_eval(layer, bn)
    return None


def fuse_for_eval(model: nn.Module) -> nn.Module:
    """An evaluation copy of ``model`` with each BatchNorm folded into the Conv2d or Linear before it.

    BatchNorm in eval mode is an affine map per channel, so ``W x + b`` followed by it is again
    ``W' x + b'``: the copy computes the same function as ``model.eval()`` (up to float rounding)
    with one pass over the activations less per BatchNorm. Pairs folded: consecutive modules in a
    plain ``nn.Sequential`` (whose forward feeds each output only to the next module: cnn4, mlp,
    the ResNets' shortcuts, and such blocks in a user's network) and ``convN``/``bnN`` of this
    module's ResNets and blocks, whose forwards apply ``bnN`` right after ``convN``. That covers
    every BatchNorm of :data:`MODELS` ("linear" has none). Any other BatchNorm is kept, so the copy
    stays exact for any network. The copy is in eval mode without gradients; ``model`` (and its
    ``training`` flag) is left untouched.

    Parameters
    ----------
    model : nn.Module
        A trained network.

    Returns
    -------
    nn.Module
        The fused copy, on ``model``'s device, in the memory format of ``model``'s weights.
    """
    fused = copy.deepcopy(model).eval()
    for module in list(fused.modules()):
        if type(module) is nn.Sequential:  # not a subclass: its forward may use the layers otherwise
            for i in range(len(module) - 1):
                merged = _fuse_pair(module[i], module[i + 1])
                if merged is not None:
                    module[i], module[i + 1] = merged, nn.Identity()
        if type(module) not in (ResNet, BasicBlock, Bottleneck):
            continue
        names = dict(module.named_children())
        for name, child in names.items():
            if name.startswith("conv") and f"bn{name[4:]}" in names:
                merged = _fuse_pair(child, names[f"bn{name[4:]}"])
                if merged is not None:
                    setattr(module, name, merged)
                    setattr(module, f"bn{name[4:]}", nn.Identity())
    return fused.requires_grad_(False)
