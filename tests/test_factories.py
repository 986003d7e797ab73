"""--model package.module:factory: a user's network through train, resume, detect and the estimator."""

import json
import sys
import textwrap

import pytest

from limitlab.cli import main
from limitlab.config import Config
from limitlab.analysis.detect import detect
from limitlab.train import train

NETS = '''
import math
from torch import nn

CALLS = []

def small(input_shape, num_classes):
    CALLS.append((tuple(input_shape), num_classes))
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 32), nn.ReLU(), nn.Linear(32, num_classes))

def one_too_many(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes + 1))

def breaks(input_shape, num_classes):
    raise RuntimeError("no GPU here")

NOT_A_FUNCTION = 3
'''

TINY = dict(dataset="digits", noise="uniform:0.4", train_size=200, batch_size=64, epochs=3)
ARGS = ["train", "--dataset", "digits", "--train-size", "200", "--epochs", "1", "--batch-size", "64", "--quiet"]


@pytest.fixture()
def nets(tmp_path, monkeypatch):
    """A module ``limitlab_test_nets`` in the current folder (as a user's nets.py beside the data)."""
    (tmp_path / "limitlab_test_nets.py").write_text(textwrap.dedent(NETS))
    (tmp_path / "limitlab_test_broken.py").write_text("import no_such_package\n")
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("limitlab_test_nets", "limitlab_test_broken"):
        sys.modules.pop(name, None)


def test_factory_trains_resumes_and_detects(nets):
    config = Config(**TINY, method="limit-l", model="limitlab_test_nets:small")
    full = train(config, nets / "full", progress=False)
    calls = sys.modules["limitlab_test_nets"].CALLS
    assert calls[:2] == [((1, 8, 8), 10), ((1, 8, 8), 10)]      # classifier and q-network
    assert json.loads((nets / "full" / "config.json").read_text())["model"] == "limitlab_test_nets:small"

    def kill_after_epoch_1(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(config, nets / "killed", progress=False, on_epoch_end=kill_after_epoch_1)
    resumed = train(Config(), nets / "killed", resume=True, progress=False)
    assert {k: v for k, v in resumed.items() if k != "seconds"} == {k: v for k, v in full.items() if k != "seconds"}

    summary = detect(nets / "full", progress=False, split="train")
    assert summary["score"] == "limit_gradient_mismatch" and summary["n"] == 200


def test_wrong_output_shape_is_one_sentence_and_nothing_is_written(nets, capsys):
    out = nets / "run"
    assert main([*ARGS, "--model", "limitlab_test_nets:one_too_many", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("limitlab: error: model limitlab_test_nets:one_too_many returns (2, 11) for a batch of inputs of "
                   "shape (2, 1, 8, 8), but must return logits of shape (2, 10) (batch, number of classes)")
    assert not out.exists()


@pytest.mark.parametrize("spec,message", [
    ("limitlab_test_broken:f", "--model limitlab_test_broken:f: cannot import limitlab_test_broken "
                               "(ModuleNotFoundError: No module named 'no_such_package')"),
    ("limitlab_test_nets:missing", "--model limitlab_test_nets:missing: limitlab_test_nets has no attribute 'missing'"),
    ("limitlab_test_nets:NOT_A_FUNCTION", "NOT_A_FUNCTION must be a function (input_shape, num_classes) -> nn.Module"),
    ("limitlab_test_nets:breaks", "model limitlab_test_nets:breaks failed when called as factory((1, 8, 8), 10): "
                                  "RuntimeError: no GPU here"),
    ("not a module:x", "is not package.module:factory"),
])
def test_factory_problems(nets, capsys, spec, message):
    out = nets / "run"
    assert main([*ARGS, "--model", spec, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("limitlab: error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_penalize_needs_a_registered_model(nets, capsys):
    assert main([*ARGS, "--method", "penalize", "--model", "limitlab_test_nets:small", "--out", str(nets / "r")]) == 2
    assert "bias-free last layer" in capsys.readouterr().err


def test_estimator_takes_the_same_string(nets):
    pytest.importorskip("sklearn")
    import numpy as np

    from limitlab import LimitClassifier

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)).astype(np.float32), np.repeat([0, 1], 30)
    clf = LimitClassifier(module="limitlab_test_nets:small", epochs=1, random_state=0).fit(x, y)
    assert clf.predict(x).shape == (60,)
    assert sys.modules["limitlab_test_nets"].CALLS[-1] == ((4,), 2)
