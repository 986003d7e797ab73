"""The networks of the paper (docs/method.md §6) as modules: the 4-layer CNN, the MLP and the ResNets.
:mod:`limitlab.models` registers them by name."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import LimitlabError


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
