"""The architectures (docs/method.md §6), registered by name: ``build_model("cnn4", (1, 28, 28), 10)``;
and :func:`fuse_for_eval`, the evaluation copy of a trained network with BatchNorm folded in."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from .errors import LimitlabError
from .factories import build_from_factory, is_factory_spec, load_factory
from .registry import Registry, decorator


class WholeInputConv2d(nn.Conv2d):
    """A Conv2d for inputs exactly the size of its kernel (no padding), which is a matrix product:
    [B, C·k·k] @ [C·k·k, C_out]. Same parameters and function as ``nn.Conv2d`` (other input sizes
    fall back to it); computed as a matrix product because CPU convolution kernels ran this shape
    (cnn4's last conv, 3×3 → 1×1) about 3× slower forward and backward (benchmarks/RESULTS.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.kernel_size or self.padding != (0, 0) or self.groups != 1:
            return super().forward(x)
        # (H, W, C) order on both sides: a free view of a channels_last input
        weight = self.weight.permute(0, 2, 3, 1).flatten(1)
        return F.linear(x.permute(0, 2, 3, 1).flatten(1), weight, self.bias)[:, :, None, None]


def _conv_bn_relu(c_in: int, c_out: int, k: int, s: int, p: int, conv: type[nn.Conv2d] = nn.Conv2d,
                  ) -> list[nn.Module]:
    return [conv(c_in, c_out, k, s, p, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class CNN4(nn.Module):
    """The paper's 4-layer MNIST CNN: conv32 k4s2p1 → conv32 k4s2p1 → conv64 k3s2 → conv256 k3s1
    (each BN + ReLU) → fc128 ReLU → fc K. The q-network variant (``fc_batchnorm=True``) has BN in
    fc128. Input [B, C, 28, 28] (the conv stack reduces 28×28 to 1×1)."""

    def __init__(self, in_channels: int, num_classes: int, fc_batchnorm: bool = False, dropout: float = 0.0,
                 head_bias: bool = True):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, 32, 4, 2, 1),
            *_conv_bn_relu(32, 32, 4, 2, 1),
            *_conv_bn_relu(32, 64, 3, 2, 0),
            *_conv_bn_relu(64, 256, 3, 1, 0, conv=WholeInputConv2d),  # 3×3 → 1×1
            nn.Flatten(),
        )
        hidden = [nn.Linear(256, 128, bias=not fc_batchnorm)]
        if fc_batchnorm:
            hidden.append(nn.BatchNorm1d(128))
        hidden += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.hidden = nn.Sequential(*hidden)
        self.head = nn.Linear(128, num_classes, bias=head_bias)

    def forward_features(self, x):
        """z: the input of the last layer [B, 128]."""
        return self.hidden(self.features(x))

    def forward(self, x):
        return self.head(self.forward_features(x))


class MLP(nn.Module):
    """The paper's MLP for the memorization study: ``depth`` × [fc ``width``, BN, ReLU] → fc K,
    with optional dropout after each hidden layer. Input [B, ...] is flattened."""

    def __init__(self, in_features: int, num_classes: int, width: int = 512, depth: int = 4, dropout: float = 0.0,
                 head_bias: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else width, width, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width if depth else in_features, num_classes, bias=head_bias)

    def forward_features(self, x):
        """z: the input of the last layer [B, width] ([B, in_features] when depth is 0)."""
        return self.hidden(x)

    def forward(self, x):
        return self.head(self.forward_features(x))


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convs (BN, ReLU) with an identity or 1×1-conv shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != planes:
            self.downsample = nn.Sequential(_conv1x1(c_in, planes, stride), nn.BatchNorm2d(planes))

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (carries the stride, as torchvision's v1.5) → 1×1 (×4 channels), each with BN,
    plus an identity or 1×1-conv shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = _conv1x1(c_in, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, out)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or c_in != out:
            self.downsample = nn.Sequential(_conv1x1(c_in, out, stride), nn.BatchNorm2d(out))

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet with torchvision's module names (``conv1``, ``bn1``, ``layer1.0.conv1``, ...),
    except that the last layer is ``head`` (not ``fc``).

    ``stem="cifar"``: 3×3 stride-1 conv + BN + ReLU, no max-pool (layer1 sees the full image).
    ``stem="imagenet"``: 7×7 stride-2 conv + BN + ReLU + 3×3 stride-2 max-pool (÷4).
    Then four stages of widths 64/128/256/512 (× the block's expansion), global average pool,
    dropout (``dropout``; 0 = none) and ``head`` = fc K. Kaiming-normal convs, BN weight 1 bias 0;
    ``zero_init_residual=True`` zeroes each block's last BN weight.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], in_channels: int,
                 num_classes: int, stem: str = "cifar", dropout: float = 0.0, head_bias: bool = True,
                 zero_init_residual: bool = False):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise LimitlabError(f"unknown ResNet stem {stem!r}; choose 'cifar' or 'imagenet'")
        self.stem = stem
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        c_in = 64
        stages = []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(block(c_in, planes, stride=2 if (i > 0 and j == 0) else 1))
                c_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_in
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, num_classes, bias=head_bias)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x):
        """z: the globally pooled features, the input of the last layer [B, 512] or [B, 2048]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        return self.head(self.dropout(self.forward_features(x)))


_RESNETS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}

def _one_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


PRETRAINED_HINT = ("pip install 'limitlab[pretrained]' (torchvision) on a machine where torchvision "
                   "imports beside the installed torch")


def torchvision_resnet50_state() -> dict[str, torch.Tensor] | None:
    """torchvision's ImageNet ResNet-50 weights (IMAGENET1K_V1) without ``fc.*``, or None, with a
    warning, when torchvision does not import; LimitlabError when the weights cannot be fetched."""
    try:
        import torchvision  # noqa: PLC0415 (optional dependency)
    except Exception as e:  # ImportError, or a RuntimeError when its build does not match torch's
        warnings.warn(f"resnet50 pretrained=True: torchvision is not available ({_one_line(e)}), "
                      f"so the network starts from random weights, not ImageNet weights; to get them, "
                      f"{PRETRAINED_HINT}", UserWarning, stacklevel=3)
        return None
    try:
        source = torchvision.models.resnet50(weights="IMAGENET1K_V1")
    except Exception as e:  # offline, blocked download, corrupt cache, torchvision too old for weights=
        raise LimitlabError(
            f"could not load torchvision's ImageNet ResNet-50 weights ({_one_line(e)}); connect to "
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
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LimitlabError(f"{source}: its weights do not fit this run's model ({first})") from None


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
