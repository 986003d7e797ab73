"""Every registered method, model, noise model and dataset, tested the same way (as timm tests every
registered model): a new registration is picked up here without touching this file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from limitlab.cli import build_parser
from limitlab.config import Config
from limitlab.data import DATASETS, load_dataset
from limitlab.data.run import prepare_data
from limitlab.errors import LimitlabError
from limitlab.methods import METHODS, option_fields, option_problem
from limitlab.models import MODELS, build_model
from limitlab.noise import NOISE_MODELS, corrupt_labels, noisy_labels, parse_noise, uniform_transition
from limitlab.train import build_run_objective

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8)]  # tried in order: the first one a model accepts


def _method_config(name: str, tmp_path) -> Config:
    spec = METHODS.get(name)
    extra = {}
    if spec.check and spec.check(Config(method=name)):  # e.g. fw needs a transition or a CE run
        path = tmp_path / "T.csv"
        np.savetxt(path, np.full((10, 10), 0.02) + np.eye(10) * 0.8, delimiter=",")
        extra["transition"] = str(path)
    return Config(dataset="digits", noise="uniform:0.3", method=name, train_size=64, **extra)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_builds_and_takes_one_step(name, tmp_path):
    config = _method_config(name, tmp_path)
    config.validate()
    torch.manual_seed(0)
    data = prepare_data(config, torch.device("cpu"))
    objective, _ = build_run_objective(config, data)
    objective.start_epoch(1)
    x = data.to_input(data.train.images[:32])
    index = torch.arange(32)  # the batch's positions, for methods with per-example state
    loss, logits = objective(x, data.train.labels[:32], index) if objective.uses_index else \
        objective(x, data.train.labels[:32])
    assert loss.ndim == 0 and math.isfinite(loss.item())
    assert logits.shape == (32, data.num_classes)
    assert objective.parts and all(v.ndim == 0 and math.isfinite(v.item()) for v in objective.parts.values())
    loss.backward()
    grads = [p.grad for p in objective.classifier.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert (getattr(objective, "q_network", None) is not None) == METHODS.get(name).has_q_network


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_refuses_options_it_does_not_read(name, tmp_path):
    spec = METHODS.get(name)
    config = _method_config(name, tmp_path)
    assert option_problem(config) is None
    foreign = [f for f in option_fields() if f not in spec.options and f not in ("q_init_from", "transition")]
    for field in foreign:
        value = getattr(Config(), field)
        changed = "laplace:0.2" if isinstance(value, str) else (value / 2 if value else 1)
        bad = Config(**{**config.to_dict(), field: changed})
        assert f"--{field.replace('_', '-')} is not read by --method {name}" in option_problem(bad)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_builds_runs_and_backpropagates(name):
    for shape in SHAPES:
        try:
            model = build_model(name, shape, 5)
            break
        except LimitlabError:
            continue
    else:
        pytest.fail(f"model {name} accepts none of the shapes {SHAPES}")
    x = torch.randn(4, *shape)
    out = model(x)
    assert out.shape == (4, 5)
    assert torch.equal(model.head(model.forward_features(x)), model(x)) or model.training  # dropout may differ
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", NOISE_MODELS.names())
def test_every_noise_model_is_row_stochastic_and_corrupts_as_it_says(name, tmp_path):
    spec = NOISE_MODELS.get(name)
    labels = np.repeat(np.arange(10), 2000)
    if spec.read_labels is not None:  # the noisy labels come from a file; T is the transition they realise
        given = corrupt_labels(labels, uniform_transition(10, 0.3), seed=1)
        np.save(tmp_path / "noisy.npy", given)
        noisy, t = noisy_labels(f"{name}:{tmp_path / 'noisy.npy'}", labels, 10, seed=0)
        assert np.array_equal(noisy, given)
    else:
        if spec.argument is None:
            text = name
        elif spec.argument == "p":
            text = f"{name}:0.3"
        else:
            path = tmp_path / "T.npy"
            np.save(path, np.full((10, 10), 0.05) + np.eye(10) * 0.5)
            text = f"{name}:{path}"
        t = parse_noise(text, 10)
        noisy = corrupt_labels(labels, t, seed=0)
    assert t.shape == (10, 10) and (t >= 0).all() and np.allclose(t.sum(1), 1)
    empirical = np.array([np.bincount(noisy[labels == k], minlength=10) / 2000 for k in range(10)])
    assert np.abs(empirical - t).max() < 0.04


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_has_help_and_bad_arguments_are_one_sentence(name):
    spec = DATASETS.get(name)
    assert spec.description
    wrong = name if spec.argument else f"{name}:x"  # a missing or a spurious argument
    with pytest.raises(LimitlabError):
        load_dataset(wrong, data_dir="/nonexistent")


def test_help_lists_every_registered_choice():
    help_text = build_parser("train")._subparsers._group_actions[0].choices["train"].format_help()
    flat = " ".join(help_text.split())
    for registry in (METHODS, MODELS, NOISE_MODELS, DATASETS):
        for name in registry:
            assert name in flat, f"{registry.kind} {name} missing from `limitlab train --help`"


def test_cli_refuses_a_flag_the_method_does_not_read(tmp_path, capsys):
    from limitlab.cli import main

    code = main(["train", "--method", "ce", "--beta", "3", "--epochs", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--beta is not read by --method ce" in err
    assert not (tmp_path / "r").exists()


def test_a_new_method_is_one_registration(tmp_path, monkeypatch):
    """The README's example: a registered method trains through the CLI, gets a sweep run name and a
    report row, with nothing else changed."""
    import torch.nn.functional as F

    from limitlab import methods
    from limitlab.analysis.runs import collect_runs
    from limitlab.analysis.tables import aggregate
    from limitlab.cli import main
    from limitlab.experiments.expand import run_name

    monkeypatch.setattr(methods.METHODS, "_specs", dict(methods.METHODS._specs))

    def sce_loss(logits, targets):
        p = logits.softmax(1)
        reverse = -(p * F.one_hot(targets, logits.shape[1]).clamp_min(1e-4).log()).sum(1).mean()
        return F.cross_entropy(logits, targets) + reverse

    @methods.register_method("my-sce", description="symmetric cross-entropy", label="my SCE")
    def _sce(make_model, config, context):
        from limitlab.objectives import LossOnLogits
        return LossOnLogits(make_model("classifier"), sce_loss, "my_sce")

    out = tmp_path / "sce"
    assert main(["train", "--dataset", "digits", "--noise", "uniform:0.3", "--method", "my-sce", "--epochs", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert "train_my_sce" in (out / "metrics.jsonl").read_text()
    assert run_name(Config(method="my-sce", dataset="digits")) == "digits_nall_none_my-sce"
    (row,) = aggregate(collect_runs(tmp_path))
    assert row.method == "my-sce" and row.seeds == 1
