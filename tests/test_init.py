"""--init-from / --q-init-from load what they say, and refuse runs that do not fit."""

import numpy as np
import pytest
import torch

from limitlab.cli import main
from limitlab.config import Config
from limitlab.data.idx import write_idx
from limitlab.data.run import prepare_data
from limitlab.train import build_run_objective, train

TINY = dict(dataset="digits", noise="uniform:0.5", train_size=200, batch_size=64, epochs=2)


@pytest.fixture(scope="module")
def ce_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ce"
    train(Config(**TINY, method="ce"), out, progress=False)
    return out


def _best_classifier(run):
    return torch.load(run / "checkpoints" / "best.pt", weights_only=False)["classifier"]


def _assert_same(state, module):
    ours = module.state_dict()
    assert set(ours) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(ours[k], v, msg=k)


def test_init_from_loads_weights_and_batchnorm_buffers(ce_run):
    config = Config(**TINY, method="dmi", init_from=str(ce_run))
    objective, _ = build_run_objective(config, prepare_data(config, torch.device("cpu")))
    state = _best_classifier(ce_run)
    assert any("running_mean" in k for k in state)
    _assert_same(state, objective.classifier)


def test_q_init_from_loads_q_and_leaves_the_classifier_fresh(ce_run):
    config = Config(**TINY, method="limit-l", q_init_from=str(ce_run))
    objective, _ = build_run_objective(config, prepare_data(config, torch.device("cpu")))
    state = _best_classifier(ce_run)
    _assert_same(state, objective.q_network)
    fresh = objective.classifier.state_dict()
    assert not torch.equal(fresh["head.weight"], state["head.weight"])
    assert torch.equal(fresh["hidden.2.running_mean"], torch.zeros_like(fresh["hidden.2.running_mean"]))


def test_fw_estimates_and_saves_its_transition(ce_run, tmp_path):
    summary = train(Config(**TINY, method="fw", init_from=str(ce_run)), tmp_path / "fw", progress=False)
    t = np.loadtxt(tmp_path / "fw" / "fw_transition.csv", delimiter=",")
    assert t.shape == (10, 10)
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-4)
    assert 0 <= summary["test_accuracy"] <= 1


def test_fw_with_a_known_transition_file(tmp_path):
    t = np.full((10, 10), 0.5 / 9)
    np.fill_diagonal(t, 0.5)
    np.savetxt(tmp_path / "T.csv", t, delimiter=",")
    train(Config(**TINY, method="fw", transition=str(tmp_path / "T.csv")), tmp_path / "fw", progress=False)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "fw" / "fw_transition.csv", delimiter=","), t, atol=1e-6)


def _tiny_mnist(root, n=64):
    rng = np.random.default_rng(0)
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for prefix, count in (("train", n), ("t10k", 16)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", (np.arange(count) % 10).astype(np.uint8))
    return root


def test_mismatched_runs_are_refused(ce_run, tmp_path, capsys):
    data_dir = _tiny_mnist(tmp_path / "data")
    common = ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--epochs", "1", "--quiet"]
    code = main([*common, "--method", "dmi", "--init-from", str(ce_run), "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code != 0 and "digits" in err and "must match" in err and not (tmp_path / "a").exists()

    code = main([*common, "--method", "limit-g", "--q-init-from", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "b")])
    assert code != 0 and "best.pt" in capsys.readouterr().err

    # a source run with another number of classes
    other = tmp_path / "five"
    (other / "checkpoints").mkdir(parents=True)
    ckpt = torch.load(ce_run / "checkpoints" / "best.pt", weights_only=False)
    ckpt["classifier"]["head.weight"] = ckpt["classifier"]["head.weight"][:5]
    torch.save(ckpt, other / "checkpoints" / "best.pt")
    code = main(["train", "--dataset", "digits", "--epochs", "1", "--quiet", "--method", "dmi", "--init-from",
                 str(other), "--out", str(tmp_path / "c")])
    assert code != 0 and "5 classes" in capsys.readouterr().err

    code = main(["train", "--dataset", "digits", "--method", "fw", "--out", str(tmp_path / "d")])
    assert code != 0 and "--init-from" in capsys.readouterr().err

    code = main(["train", "--dataset", "digits", "--method", "ce", "--q-init-from", str(ce_run), "--out",
                 str(tmp_path / "e")])
    err = capsys.readouterr().err
    assert code != 0 and "--q-init-from is not read by --method ce" in err


def test_limitlab_train_stays_the_function_after_its_module_is_imported():
    """The import system binds a loaded submodule over the package attribute of the same name;
    limitlab.train must stay callable on the second call, as on the first."""
    import importlib

    import limitlab

    importlib.import_module("limitlab.train")
    importlib.import_module("limitlab.estimator")
    assert callable(limitlab.train) and limitlab.train.__name__ == "train"
    from limitlab import train
    assert train is limitlab.train
