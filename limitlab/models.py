"""The architectures (docs/method.md §6; their modules in :mod:`limitlab.architectures`), registered by
name: ``build_model("cnn4", (1, 28, 28), 10)``; ImageNet weights for resnet50; and, re-exported from
:mod:`limitlab.fuse`, :func:`fuse_for_eval`."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .architectures import _RESNETS, CNN4, MLP, BasicBlock, Bottleneck, ResNet, WholeInputConv2d
from .errors import LimitlabError, first_line
from .factories import build_from_factory, is_factory_spec, load_factory
from .fuse import fuse_for_eval
from .registry import Registry, decorator

__all__ = ["MODELS", "register_model", "build_model", "default_model", "load_weights", "fuse_for_eval",
           "CNN4", "MLP", "ResNet", "BasicBlock", "Bottleneck", "WholeInputConv2d", "PRETRAINED"]


PRETRAINED_HINT = ("pip install 'limitlab[pretrained]' (torchvision) on a machine where torchvision "
                   "imports beside the installed torch")


def torchvision_resnet50_state() -> dict[str, torch.Tensor] | None:
    """torchvision's ImageNet ResNet-50 weights (IMAGENET1K_V1) without ``fc.*``, or None, with a
    warning, when torchvision does not import; LimitlabError when the weights cannot be fetched."""
    try:
        import torchvision  # noqa: PLC0415 (optional dependency)
    except Exception as e:  # ImportError, or a RuntimeError when its build does not match torch's
        warnings.warn(f"resnet50 pretrained=True: torchvision is not available ({first_line(e)}), "
                      f"so the network starts from random weights, not ImageNet weights; to get them, "
                      f"{PRETRAINED_HINT}", UserWarning, stacklevel=3)
        return None
    try:
        source = torchvision.models.resnet50(weights="IMAGENET1K_V1")
    except Exception as e:  # offline, blocked download, corrupt cache, torchvision too old for weights=
        raise LimitlabError(
            f"could not load torchvision's ImageNet ResNet-50 weights ({first_line(e)}); connect to "
            f"the network once or put the checkpoint in the torch hub cache ($TORCH_HOME), or drop pretrained"
        ) from e
    return {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}


def load_backbone(model: ResNet, src: dict[str, torch.Tensor]) -> None:
    """Copy ``src`` (torchvision names, no ``fc.*``) into every parameter and buffer of ``model`` but
    ``head.*``; LimitlabError unless the key sets are equal and all shapes agree."""
    src = {k: v for k, v in src.items() if not k.startswith("fc.")}
    dst = model.state_dict()
    dst_keys = {k for k in dst if not k.startswith("head.")}
    missing, unexpected = sorted(dst_keys - set(src)), sorted(set(src) - dst_keys)
    if missing or unexpected:
        raise LimitlabError(f"torchvision's resnet50 weights do not match limitlab's resnet50 "
                            f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    bad = [f"{k} {tuple(src[k].shape)} vs {tuple(dst[k].shape)}" for k in sorted(dst_keys)
           if src[k].shape != dst[k].shape]
    if bad:
        raise LimitlabError(f"torchvision's resnet50 weights do not fit this network (pretrained weights need "
                            f"3-channel images and the ImageNet stem): shape mismatch in {', '.join(bad[:3])}")
    model.load_state_dict(src, strict=False)


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: ``build(input_shape, num_classes, *, role, dropout, head_bias, pretrained,
    **options) -> nn.Module``; the module has ``forward_features(x)`` (z, the last layer's input)
    and ``head`` (the last layer)."""

    name: str
    description: str
    build: Callable[..., nn.Module]


MODELS: Registry[ModelSpec] = Registry("model", "--model")
register_model = decorator(MODELS, ModelSpec)


@register_model("cnn4", description="the paper's 4-layer CNN for 28×28 images (MNIST, Fashion-MNIST)")
def _cnn4(input_shape, num_classes, *, role="classifier", dropout=0.0, head_bias=True, **_):
    if len(input_shape) != 3:
        what = f"rows of {input_shape[0]} features" if len(input_shape) == 1 else f"of shape {tuple(input_shape)}"
        raise LimitlabError(f"model cnn4 needs 28×28 images [C, 28, 28], but the inputs are {what}; for rows of "
                            "features use the mlp or linear model (--model mlp, or module='mlp' in LimitClassifier)")
    c, h, w = input_shape
    if (h, w) != (28, 28):
        raise LimitlabError(f"model cnn4 needs 28×28 images but the data are {h}×{w}; use --model mlp")
    # LIMIT's q-network has BatchNorm in fc128 (docs/method.md §6)
    return CNN4(c, num_classes, fc_batchnorm=(role == "q"), dropout=dropout, head_bias=head_bias)


@register_model("mlp", description="4 × [fc512 BN ReLU] → fc K (the memorization study; any input size)")
def _mlp(input_shape, num_classes, *, dropout=0.0, head_bias=True, width=512, depth=4, **_):
    return MLP(math.prod(input_shape), num_classes, width=width, depth=depth, dropout=dropout, head_bias=head_bias)


@register_model("linear", description="one linear layer on the flattened input (multinomial logistic regression; "
                                      "no BatchNorm)")
def _linear(input_shape, num_classes, *, head_bias=True, **_):
    return MLP(math.prod(input_shape), num_classes, depth=0, head_bias=head_bias)


def _resnet(name: str):
    def build(input_shape, num_classes, *, dropout=0.0, head_bias=True, pretrained=False, stem=None,
              zero_init_residual=False, **_):
        if len(input_shape) != 3:
            raise LimitlabError(f"model {name} needs images [C, H, W], but the inputs have shape "
                                f"{tuple(input_shape)}; use --model mlp")
        c, h, w = input_shape
        if h < 8 or w < 8:
            raise LimitlabError(f"model {name} needs images of at least 8×8 but the data are {h}×{w}; use --model mlp")
        block, layers = _RESNETS[name]
        pretrained_state = torchvision_resnet50_state() if pretrained else None  # fetch before building
        if stem is None:
            stem = "imagenet" if name == "resnet50" or h > 64 or w > 64 else "cifar"
        model = ResNet(block, layers, c, num_classes, stem=stem, dropout=dropout, head_bias=head_bias,
                       zero_init_residual=zero_init_residual)
        if pretrained_state is not None:
            load_backbone(model, pretrained_state)
        return model
    return build


for _name, _text in (
        ("resnet18", "ResNet-18 (BasicBlocks [2,2,2,2]); CIFAR stem for images up to 64×64, ImageNet stem above"),
        ("resnet34", "ResNet-34 (BasicBlocks [3,4,6,3]); CIFAR stem up to 64×64 (the paper's CIFAR net), "
                     "ImageNet above"),
        ("resnet50", "ResNet-50 (Bottlenecks [3,4,6,3], ImageNet stem, torchvision names; the paper's "
                     "Clothing1M net)")):
    register_model(_name, description=_text)(_resnet(_name))

PRETRAINED = ("resnet50",)  # architectures with ImageNet weights (through the optional torchvision)


def default_model(input_shape: tuple[int, ...]) -> str:
    """The architecture a dataset gets when ``--model`` is not given: cnn4 for 28×28 images, a ResNet
    for colour images of 32×32 and more (ResNet-34 up to 64×64, else ResNet-50), mlp otherwise."""
    if len(input_shape) != 3:
        return "mlp"
    c, h, w = input_shape
    if (h, w) == (28, 28):
        return "cnn4"
    if h >= 32 and c == 3:
        return "resnet34" if h <= 64 else "resnet50"
    return "mlp"


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, role: str = "classifier",
                dropout: float = 0.0, head_bias: bool = True, pretrained: bool = False, **options) -> nn.Module:
    """Build the registered architecture ``name`` for inputs of ``input_shape`` (e.g. (C, H, W)).

    Parameters
    ----------
    name : str
        A name in :data:`MODELS`, or ``package.module:factory`` (a user's network, see
        :mod:`limitlab.factories`; ``role``, ``dropout`` and ``options`` do not apply to it).
    input_shape : tuple of int
        The shape of one input, e.g. ``(1, 28, 28)``.
    num_classes : int
        K, the number of outputs.
    role : {"classifier", "q"}
        LIMIT's q-network may differ from the classifier (cnn4: BatchNorm in fc128, docs/method.md §6).
    dropout : float
        Dropout rate in the hidden layers.
    head_bias : bool
        False makes the last layer bias-free (the Penalize baseline).
    pretrained : bool
        Start from ImageNet weights (resnet50 only; a warning and random weights without torchvision).
    **options
        Passed to the builder, e.g. ``stem="cifar"|"imagenet"`` and ``zero_init_residual`` for ResNets.

    Returns
    -------
    nn.Module
        With ``forward_features(x)`` (z, the last layer's input) and ``head`` (the last layer).
    """
    if is_factory_spec(name):  # --model package.module:factory, called as factory(input_shape, num_classes)
        if not head_bias:
            raise LimitlabError(f"this method needs a network with a bias-free last layer (head) and forward_features(); "
                                f"--model {name} is a factory, so use a registered model")
        return build_from_factory(load_factory(name), input_shape, num_classes, name)
    spec = MODELS.get(name)
    if pretrained and name not in PRETRAINED:
        raise LimitlabError(f"pretrained weights exist only for {', '.join(PRETRAINED)}, not {name}; drop pretrained")
    return spec.build(tuple(input_shape), num_classes, role=role, dropout=dropout, head_bias=head_bias,
                      pretrained=pretrained, **options)


def load_weights(module: torch.nn.Module, state: dict, source: str) -> None:
    """``module.load_state_dict(state)``, with a mismatch reported as one sentence naming ``source``."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise LimitlabError(f"{source}: its weights do not fit this run's model ({first_line(e)})") from None
