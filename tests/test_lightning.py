"""LIMIT in a Lightning Trainer with automatic optimization: the classifier's logits receive the
predicted gradient, and it fits only the correct part of noisy labels."""

import pytest
import torch

lightning = pytest.importorskip("lightning", reason="the optional lightning extra is not installed "
                                                    "(pip install 'limitlab[lightning]')")

from limitlab import noise  # noqa: E402
from limitlab.data import load_dataset  # noqa: E402
from limitlab.lightning import LimitLightningModule  # noqa: E402
from limitlab.models import build_model  # noqa: E402

# Lightning's own notices: no validation loader is given here, and its pytree deprecation.
pytestmark = [pytest.mark.filterwarnings("ignore:.*validation_step.*"), pytest.mark.filterwarnings("ignore:.*LeafSpec.*")]

NOISE_RATE = 0.6
EPOCHS = 10
BATCH = 128


class GradientProbe(lightning.pytorch.Callback):
    """Keeps both networks' logits of each training step and, after Lightning's backward, compares
    the gradient the classifier's logits received with (s(f) − s(q)) / B."""

    def __init__(self):
        self.checked = 0
        self.max_error = 0.0
        self.max_grad = 0.0

    def on_fit_start(self, trainer, module):
        def keep(name):
            def hook(_module, _inputs, output):
                if module.training:
                    if name == "f":
                        output.retain_grad()
                    self.outputs[name] = output
            return hook
        self.outputs = {}
        module.classifier.register_forward_hook(keep("f"))
        module.q_network.register_forward_hook(keep("q"))

    def on_after_backward(self, trainer, module):
        f, q = self.outputs["f"], self.outputs["q"]
        expected = (f.detach().softmax(1) - q.detach().softmax(1)) / f.shape[0]
        self.max_error = max(self.max_error, (f.grad - expected).abs().max().item())
        self.max_grad = max(self.max_grad, expected.abs().max().item())
        self.checked += 1


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    data = load_dataset("digits")
    mean, std = data.mean[0], data.std[0]
    x = (data.train_images.float() / 255 - mean) / std
    noisy = torch.from_numpy(noise.corrupt_labels(data.train_labels.numpy(),
                                                  noise.uniform_transition(10, NOISE_RATE), seed=0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, noisy), batch_size=BATCH, shuffle=True)
    module = LimitLightningModule(build_model("mlp", (1, 8, 8), 10), build_model("mlp", (1, 8, 8), 10, role="q"),
                                  q_dist="laplace", beta=10.0, lr=1e-3)
    probe = GradientProbe()
    trainer = lightning.Trainer(accelerator="cpu", max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False, callbacks=[probe])
    trainer.fit(module, loader)
    module.eval()
    with torch.no_grad():
        predictions = module(x).argmax(1)
    return dict(module=module, probe=probe, trainer=trainer, predictions=predictions, noisy=noisy,
                true=data.train_labels, batches=len(loader))


def test_classifier_logits_receive_the_predicted_gradient(trained):
    probe = trained["probe"]
    assert probe.checked == EPOCHS * trained["batches"]  # every step of automatic optimization
    assert probe.max_grad > 1e-3                         # a real gradient, not zeros
    assert probe.max_error < 1e-6


def test_training_accuracy_on_noisy_labels_stays_near_the_clean_fraction(trained):
    clean_fraction = (trained["noisy"] == trained["true"]).float().mean().item()  # ≈ 1 − p = 0.4
    noisy_accuracy = (trained["predictions"] == trained["noisy"]).float().mean().item()
    true_accuracy = (trained["predictions"] == trained["true"]).float().mean().item()
    assert abs(noisy_accuracy - clean_fraction) < 0.1
    assert noisy_accuracy > 0.25           # chance is 0.1
    assert true_accuracy > 0.8             # it learnt the true labels of the corrupted examples


def test_one_optimizer_over_both_networks(trained):
    module = trained["module"]
    (optimizer,) = trained["trainer"].optimizers
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in module.classifier.parameters()} <= in_optimizer
    assert {id(p) for p in module.q_network.parameters()} <= in_optimizer
    assert "train_noisy_accuracy" in trained["trainer"].callback_metrics


def test_per_example_losses_are_refused():
    with pytest.raises(ValueError, match="scalar loss"):
        LimitLightningModule(torch.nn.Linear(2, 3), torch.nn.Linear(2, 3), reduction="none")
