"""The one epoch loop (limitlab.loop) behind `limitlab train` and LimitClassifier.fit, and the
hyperparameters declared once (limitlab.config.setting) with what derives from them."""

import math
import sys
import textwrap

import numpy as np
import pytest
from torch import nn

from limitlab.cli import main
from limitlab.config import Config, add_field, remove_field, setting
from limitlab.errors import LimitlabError, first_line
from limitlab.experiments.expand import run_name
from limitlab.loop import BestWeightsInMemory, EpochCallback
from limitlab.methods import METHODS, register_method
from limitlab.train import train

sklearn = pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV  # noqa: E402

from limitlab import LimitClassifier  # noqa: E402

TINY = dict(dataset="digits", noise="uniform:0.4", train_size=200, batch_size=64, epochs=2, device="cpu")


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(size=(n, 4)) + 3 * np.eye(3, 4)[y]).astype(np.float32), y


def small_net(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(), nn.Linear(16, num_classes))


class Fails(nn.Module):
    """A user's network that passes the shape checks (one eval and one training call) and fails in
    the first training step."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.net = small_net(input_shape, num_classes)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.training and self.calls > 2:
            raise RuntimeError("the user's bug\nsecond line of the message")
        return self.net(x)


def fails(input_shape, num_classes):
    return Fails(input_shape, num_classes)


# ----------------------------------------------------------------------------------- the loop
def test_epoch_callback_gets_epoch_objective_data_and_row(tmp_path):
    seen = []

    def fn(epoch, objective, data, row):
        seen.append((epoch, objective.classifier is not None, len(data.train), row["epoch"], "val_accuracy" in row))

    train(Config(**TINY, method="ce"), tmp_path / "r", progress=False, callbacks=[EpochCallback(fn)])
    assert seen == [(1, True, 200, 1, True), (2, True, 200, 2, True)]


def test_estimator_reports_divergence_like_the_cli():
    x, y = _blobs()
    with pytest.raises(ValueError, match=r"^training diverged: a parameter reached .* in epoch 1; try a lower lr"):
        LimitClassifier(lr=1e6, epochs=3, random_state=0).fit(x, y)


def test_estimator_uses_torchs_fused_adam_through_onecycle(monkeypatch):
    import limitlab.onecycle as onecycle

    fused = []
    real = onecycle.adam
    monkeypatch.setattr(onecycle, "adam", lambda *a, **k: fused.append(k["fused"]) or real(*a, **k))
    x, y = _blobs()
    LimitClassifier(epochs=1, random_state=0).fit(x, y)
    assert fused and all(fused)  # every step, on the CPU


def test_loop_skips_evaluation_passes_that_measure_nothing(monkeypatch):
    import limitlab.loop as loop_module

    epochs = []
    real = loop_module.evaluate
    monkeypatch.setattr(loop_module, "evaluate", lambda *a, **k: epochs.append(a[3]) or real(*a, **k))
    x, y = _blobs()
    clf = LimitClassifier(epochs=3, validation_fraction=0, random_state=0).fit(x, y)
    assert epochs == []  # no validation rows, no true labels, no test split
    assert all(r["val_accuracy"] is None and r["train_noisy_accuracy"] is None for r in clf.history_)
    clf = LimitClassifier(epochs=3, validation_fraction=0, method_options={"train_eval_every": 2},
                          random_state=0).fit(x, y)
    assert epochs == [2] and clf.history_[1]["train_noisy_accuracy"] is not None
    LimitClassifier(epochs=2, validation_fraction=0.2, random_state=0).fit(x, y)
    assert epochs == [2, 1, 2]


def test_best_weights_are_copied_only_with_validation_rows():
    x, y = _blobs()
    without, with_val = BestWeightsInMemory(), BestWeightsInMemory()
    LimitClassifier(epochs=2, validation_fraction=0, random_state=0).fit(x, y, callbacks=[without])
    LimitClassifier(epochs=2, validation_fraction=0.2, random_state=0).fit(x, y, callbacks=[with_val])
    assert without.state is None and with_val.state is not None


def test_error_inside_a_users_network_is_one_sentence_in_the_cli(tmp_path, monkeypatch, capsys):
    (tmp_path / "limitlab_test_failing.py").write_text(textwrap.dedent('''
        import math
        from torch import nn

        class Fails(nn.Module):
            def __init__(self, input_shape, num_classes):
                super().__init__()
                self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))
                self.calls = 0

            def forward(self, x):  # passes the shape checks (one eval, one training call), fails in training
                self.calls += 1
                if self.training and self.calls > 2:
                    raise RuntimeError("the user's bug\\nsecond line of the message")
                return self.net(x)

        def fails(input_shape, num_classes):
            return Fails(input_shape, num_classes)
    '''))
    monkeypatch.chdir(tmp_path)
    args = ["train", "--dataset", "digits", "--train-size", "200", "--epochs", "1", "--batch-size", "64",
            "--device", "cpu", "--quiet", "--model", "limitlab_test_failing:fails", "--method", "ce"]
    try:
        assert main([*args, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip()
        assert err == ("limitlab: error: model limitlab_test_failing:fails raised an error while training in epoch 1 "
                       "(RuntimeError: the user's bug); set LIMITLAB_DEBUG=1 for the full traceback")
        assert not (tmp_path / "r").exists()  # nothing half-written
        monkeypatch.setenv("LIMITLAB_DEBUG", "1")
        with pytest.raises(RuntimeError, match="the user's bug"):
            main([*args, "--out", str(tmp_path / "r2")])
    finally:
        sys.modules.pop("limitlab_test_failing", None)


def test_error_inside_a_users_network_is_one_sentence_in_the_estimator(monkeypatch):
    x, y = _blobs()
    with pytest.raises(ValueError) as caught:
        LimitClassifier(module=fails, method="ce", epochs=1, random_state=0).fit(x, y)
    assert str(caught.value) == ("model fails raised an error while training in epoch 1 (RuntimeError: the user's "
                                 "bug); set LIMITLAB_DEBUG=1 for the full traceback")
    monkeypatch.setenv("LIMITLAB_DEBUG", "1")
    with pytest.raises(RuntimeError, match="the user's bug"):
        LimitClassifier(module=fails, method="ce", epochs=1, random_state=0).fit(x, y)


def test_first_line():
    assert first_line(ValueError("a\nb")) == "ValueError: a"
    assert first_line(KeyError()) == "KeyError"


# ----------------------------------------------------------------------------------- declared once
@pytest.fixture()
def new_method():
    """A method with a hyperparameter of its own, added the way the docs say: its loss, one
    registration, one field."""
    add_field("test_tau", "float", setting(0.5, "the test method's temperature τ", short="tau"))

    @register_method("test-tau", description="CE on logits divided by τ (a test method)", options=("test_tau",),
                     main="test_tau")
    def _build(make_model, config, context):
        from limitlab.objectives import LossOnLogits
        return LossOnLogits(make_model("classifier"),
                            lambda logits, y: nn.functional.cross_entropy(logits / config.test_tau, y), "tau")
    try:
        yield
    finally:
        METHODS._specs.pop("test-tau")
        remove_field("test_tau")


def test_a_new_field_reaches_the_help_the_run_names_and_the_estimator(new_method, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--test-tau" in text and "test-tau: the test method's temperature τ" in text
    assert run_name(Config(method="test-tau", test_tau=0.25)) == "digits_nall_none_test-tau_tau0.25"
    assert main(["train", "--dataset", "digits", "--train-size", "100", "--epochs", "1", "--device", "cpu",
                 "--quiet", "--method", "test-tau", "--test-tau", "2", "--out", str(tmp_path / "r")]) == 0
    assert Config.load(tmp_path / "r" / "config.json").test_tau == 2.0
    x, y = _blobs()
    clf = LimitClassifier(method="test-tau", method_options={"test_tau": 2.0}, epochs=1, random_state=0).fit(x, y)
    assert len(clf.history_) == 1
    with pytest.raises(ValueError, match="'test_tau' must be a number"):
        LimitClassifier(method="test-tau", method_options={"test_tau": "hot"}, epochs=1).fit(x, y)


def test_grid_search_reaches_any_method_option():
    x, y = _blobs()
    base = LimitClassifier(method="gce", epochs=2, batch_size=16, random_state=0, module=small_net)
    search = GridSearchCV(base, {"method_options__gce_q": [0.3, 0.9], "lr": [1e-3]}, cv=2).fit(x, y)
    assert {p["method_options__gce_q"] for p in search.cv_results_["params"]} == {0.3, 0.9}
    assert search.best_estimator_.method_options["gce_q"] in (0.3, 0.9)
    assert base.method_options is None  # the searched estimator's own dict is never modified
    clf = LimitClassifier(method_options={"warmup": 1}).set_params(method_options__dropout=0.1)
    assert clf.method_options == {"warmup": 1, "dropout": 0.1}


@pytest.mark.parametrize("options, message", [
    ({"warmup": "x"}, "method_options field 'warmup' must be an integer, not a string \"x\""),
    ({"gce_q": None}, "method_options field 'gce_q' must be a number, not null"),
    ({"dataset": "mnist"}, "method_options has unknown or estimator-level key(s) dataset"),
])
def test_method_options_are_type_checked_in_one_sentence(options, message):
    x, y = _blobs()
    with pytest.raises(ValueError) as caught:
        LimitClassifier(method_options=options, epochs=1).fit(x, y)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("seed", [-1, 2 ** 70, 1.5])
def test_bad_random_state_is_named(seed):
    x, y = _blobs()
    with pytest.raises(ValueError, match=r"^random_state must be None, an integer in \[0, 2\*\*32 - 1\]"):
        LimitClassifier(random_state=seed, epochs=1).fit(x, y)


def test_config_fields_all_have_help_and_distinct_flags():
    from limitlab.config import field_infos

    infos = field_infos()
    assert all(i.help for i in infos)
    assert len({i.flag for i in infos}) == len(infos)
    with pytest.raises(LimitlabError):
        Config.from_dict({"warmup": "x"})


def test_method_options_may_set_what_the_estimator_sets_itself_otherwise():
    x, y = _blobs()
    clf = LimitClassifier(method_options={"eval_batch_size": 8, "train_eval_every": 0}, epochs=1, random_state=0)
    assert clf.fit(x, y).history_[0]["train_noisy_accuracy"] is None  # no training-set pass asked for
    with pytest.raises(ValueError, match="unknown or estimator-level key.*test_every"):
        LimitClassifier(method_options={"test_every": 1}, epochs=1).fit(x, y)


def test_estimator_takes_epoch_callbacks():
    x, y = _blobs()
    seen = []
    clf = LimitClassifier(epochs=3, patience=None, validation_fraction=0.2, random_state=0).fit(
        x, y, callbacks=[EpochCallback(lambda epoch, objective, data, row: seen.append(
            (epoch, len(data.train), objective.classifier.training)))])
    assert seen == [(1, 96, True), (2, 96, True), (3, 96, True)]
    assert [r["epoch"] for r in clf.history_] == [1, 2, 3]
