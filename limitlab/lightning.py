"""LIMIT as a Lightning ``LightningModule``, with Lightning's automatic optimization.

One loss and one optimizer cover both networks: :class:`limitlab.LIMIT` returns one scalar whose
``backward()`` gives the classifier's logits the predicted gradient ``s(f) − s(q)`` (divided by the
batch size) and the q-network the gradient of its own loss, so Lightning's usual
``training_step`` → ``backward`` → ``optimizer.step`` does the rest::

    import lightning
    from limitlab.lightning import LimitLightningModule

    module = LimitLightningModule(make_net(), make_net(), q_dist="laplace", beta=10.0, lr=1e-3)
    lightning.Trainer(max_epochs=100).fit(module, train_loader, val_loader)
    classifier = module.classifier          # the model to keep; it never saw a label

Batches are ``(x, y)`` with ``y`` the (noisy) labels, as int64 class indices. This module needs
the optional ``lightning`` package (``pip install 'limitlab[lightning]'``); ``import limitlab``
does not import it.
"""

from __future__ import annotations

import torch
from torch import nn

from .limit import LIMIT


def _lightning_pytorch():
    try:
        import lightning.pytorch as pl
    except ImportError:
        try:  # the older standalone package has the same LightningModule
            import pytorch_lightning as pl
        except ImportError:
            raise ImportError("limitlab.lightning needs Lightning; install it with "
                              "pip install 'limitlab[lightning]'") from None
    return pl


_pl = _lightning_pytorch()


class LimitLightningModule(_pl.LightningModule):
    """A classifier and a q-network trained with LIMIT by a ``lightning.Trainer``.

    Parameters
    ----------
    classifier : nn.Module
        The network that is kept and evaluated, mapping inputs to [B, K] logits.
    q_network : nn.Module
        The q-network, usually of the same architecture with its own weights; it sees the labels.
    q_dist : str
        "laplace" (LIMIT_L, the default) or "gaussian" (LIMIT_G): the q-network's loss.
    beta : float
        Weight of the predicted-gradient norm penalty ``β‖s(f) − s(q)‖²`` (default 10).
    sample_lambda : float or None
        The sampling variant: the classifier receives a sample around the predicted gradient.
    lr : float
        Adam's learning rate, one optimizer over both networks (default 1e-3, the paper's).
    weight_decay : float
        Adam's weight decay (default 0).
    reduction : str
        Passed to :func:`limitlab.limit_loss`: "mean" (default) or "sum".

    Notes
    -----
    ``training_step`` logs ``train_loss`` (the q-network's loss), the loss parts and
    ``train_noisy_accuracy`` (the classifier's accuracy against the given labels); the
    validation and test steps log ``val_accuracy`` and ``test_accuracy`` of the classifier
    against the labels of their batches. ``forward(x)`` and ``predict_step`` use the
    classifier only.
    """

    def __init__(self, classifier: nn.Module, q_network: nn.Module, *, q_dist: str = "laplace",
                 beta: float = 10.0, sample_lambda: float | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.0, reduction: str = "mean"):
        super().__init__()
        if reduction == "none":
            raise ValueError("a training step needs a scalar loss; use reduction='mean' or 'sum'")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, not {lr}")
        self.limit = LIMIT(classifier, q_network, q_dist=q_dist, beta=beta, sample_lambda=sample_lambda,
                           reduction=reduction)
        self.lr, self.weight_decay = lr, weight_decay

    @property
    def classifier(self) -> nn.Module:
        """The trained classifier (the model to keep)."""
        return self.limit.classifier

    @property
    def q_network(self) -> nn.Module:
        """The q-network."""
        return self.limit.q_network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits."""
        return self.limit.classifier(x)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """LIMIT's loss on one batch ``(x, y)``; Lightning calls ``backward`` and steps the optimizer."""
        x, y = batch[0], batch[1]
        loss, logits = self.limit(x, y)
        self.log("train_loss", loss.detach(), prog_bar=True)
        for name, value in self.limit.parts.items():
            self.log(f"train_{name}", value)
        self.log("train_noisy_accuracy", (logits.detach().argmax(1) == y).float().mean(), prog_bar=True)
        return loss

    def _accuracy(self, batch, name: str) -> torch.Tensor:
        x, y = batch[0], batch[1]
        accuracy = (self.limit.classifier(x).argmax(1) == y).float().mean()
        self.log(name, accuracy, prog_bar=True)
        return accuracy

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        """The classifier's accuracy against the batch's labels, logged as ``val_accuracy``."""
        return self._accuracy(batch, "val_accuracy")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        """The classifier's accuracy against the batch's labels, logged as ``test_accuracy``."""
        return self._accuracy(batch, "test_accuracy")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """The classifier's class probabilities for the batch's inputs."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.limit.classifier(x).softmax(1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """One Adam optimizer over both networks."""
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
