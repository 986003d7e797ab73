"""The paper's architectures (SPEC §6), built by name: ``build_model("cnn4", (1, 28, 28), 10)``."""

from __future__ import annotations

from torch import nn

from .errors import LimitlabError


def _conv_bn_relu(c_in: int, c_out: int, k: int, s: int, p: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, s, p, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


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
            *_conv_bn_relu(64, 256, 3, 1, 0),
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
        self.head = nn.Linear(width, num_classes, bias=head_bias)

    def forward_features(self, x):
        """z: the input of the last layer [B, width]."""
        return self.hidden(x)

    def forward(self, x):
        return self.head(self.forward_features(x))


MODELS = {
    "cnn4": "the paper's 4-layer CNN for 28×28 images (MNIST, Fashion-MNIST)",
    "mlp": "4 × [fc512 BN ReLU] → fc K (the memorization study; any input size)",
}


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, role: str = "classifier",
                dropout: float = 0.0, head_bias: bool = True) -> nn.Module:
    """Build architecture ``name`` for inputs of ``input_shape`` = (C, H, W).

    ``role`` is "classifier" or "q" (LIMIT's q-network; for cnn4 it has BN in fc128, SPEC §6).
    Every model has ``forward_features(x)`` (z, the last layer's input) and ``head`` (the last
    layer); ``head_bias=False`` makes the last layer bias-free (the Penalize baseline).
    """
    c, h, w = input_shape
    if name == "cnn4":
        if (h, w) != (28, 28):
            raise LimitlabError(f"model cnn4 needs 28×28 images but the data are {h}×{w}; use --model mlp")
        return CNN4(c, num_classes, fc_batchnorm=(role == "q"), dropout=dropout, head_bias=head_bias)
    if name == "mlp":
        return MLP(c * h * w, num_classes, dropout=dropout, head_bias=head_bias)
    raise LimitlabError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
