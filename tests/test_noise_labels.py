"""--noise labels:FILE[:KEY]: noisy labels imported from a file (CIFAR-10N-style .pt, .npy, .csv/.txt)."""

import math
import os

import numpy as np
import pytest
import torch

from limitlab import noise
from limitlab.cli import main
from limitlab.config import Config
from limitlab.data import load_dataset
from limitlab.errors import LimitlabError
from limitlab.data.run import prepare_data

DIGITS_TRAIN = 1297  # the bundled digits' official training set
K = 10


@pytest.fixture(scope="module")
def truth():
    return load_dataset("digits").train_labels.numpy()


def flipped(truth, rate, seed):
    """A noisy copy of ``truth`` with about ``rate`` of the labels moved to another class."""
    rng = np.random.default_rng(seed)
    out = truth.copy()
    move = rng.random(len(truth)) < rate
    out[move] = (truth[move] + rng.integers(1, K, move.sum())) % K
    return out


@pytest.fixture(scope="module")
def human_pt(tmp_path_factory, truth):
    """A label file in CIFAR-10N's format: torch.save of a dict of int64 numpy arrays."""
    path = tmp_path_factory.mktemp("n") / "CIFAR-10_human.pt"
    torch.save({"clean_label": truth.copy(), "worse_label": flipped(truth, 0.4, 1),
                "aggre_label": flipped(truth, 0.1, 2), "random_label1": flipped(truth, 0.17, 3),
                "random_label2": flipped(truth, 0.17, 4), "random_label3": flipped(truth, 0.17, 5)}, path)
    return path


def test_pt_key_gives_the_noisy_labels_and_the_dataset_keeps_the_true_ones(human_pt, truth):
    config = Config(dataset="digits", noise=f"labels:{human_pt}:worse_label", seed=3)
    data = prepare_data(config, torch.device("cpu"))
    worse = torch.load(human_pt, weights_only=False)["worse_label"]  # our own test file: trusted
    r = data.record
    np.testing.assert_array_equal(r["train_noisy"], worse[r["train_index"]])
    np.testing.assert_array_equal(r["train_true"], truth[r["train_index"]])
    np.testing.assert_array_equal(r["val_labels"], worse[r["val_index"]])   # noisy validation, as always
    assert float(r["train_rate"]) == pytest.approx(np.mean(worse[r["train_index"]] != truth[r["train_index"]]))
    # T is the empirical transition over the official training set; H(ỹ|x) uses it with the training prior
    t = np.zeros((K, K))
    np.add.at(t, (truth, worse), 1)
    t /= t.sum(1, keepdims=True)
    np.testing.assert_allclose(r["transition"], t)
    prior = np.bincount(truth[r["train_index"]], minlength=K) / len(r["train_index"])
    h = -sum(prior[i] * sum(p * math.log2(p) for p in t[i] if p > 0) for i in range(K))
    assert data.noisy_entropy_bits == pytest.approx(h)


def test_label_files_are_looked_for_in_the_data_root(human_pt, monkeypatch):
    config = Config(dataset="digits", noise=f"labels:{human_pt.parent.name}/{human_pt.name}:aggre_label",
                    data_dir=str(human_pt.parent.parent))
    monkeypatch.chdir("/")
    assert len(prepare_data(config, torch.device("cpu")).train) > 0


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".txt"])
def test_npy_csv_and_txt_files(tmp_path, truth, suffix):
    labels = flipped(truth, 0.3, 7)
    path = tmp_path / f"noisy{suffix}"
    if suffix == ".npy":
        np.save(path, labels)
    else:
        path.write_text(("label\n" if suffix == ".csv" else "") + "\n".join(map(str, labels)) + "\n")
    noisy, t = noise.noisy_labels(f"labels:{path}", truth, K, seed=0)
    np.testing.assert_array_equal(noisy, labels)
    assert np.allclose(t.sum(1), 1)


def test_a_pt_file_cannot_run_code(tmp_path, truth):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"noisy_label": Evil()}, path)
    with pytest.raises(LimitlabError, match="only tensors and numeric numpy arrays are loaded"):
        noise.noisy_labels(f"labels:{path}:noisy_label", truth, K, seed=0)
    assert not marker.exists()


def test_tensor_values_and_single_array_files(tmp_path, truth):
    path = tmp_path / "one.pt"
    torch.save(torch.from_numpy(flipped(truth, 0.2, 1)), path)
    noisy, _ = noise.noisy_labels(f"labels:{path}", truth, K, seed=0)
    assert noisy.shape == truth.shape


# ------------------------------------------------------------------------------- bad input: one sentence each
def test_wrong_length(tmp_path, truth):
    np.save(tmp_path / "short.npy", truth[:-1])
    with pytest.raises(LimitlabError, match=rf"has {DIGITS_TRAIN - 1} labels but the dataset's official training "
                                            rf"set has {DIGITS_TRAIN} examples"):
        noise.noisy_labels(f"labels:{tmp_path / 'short.npy'}", truth, K, seed=0)


def test_out_of_range_labels(tmp_path, truth):
    bad = truth.copy()
    bad[5] = 10
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(LimitlabError, match=r"has labels from 0 to 10, outside the dataset's classes 0..9"):
        noise.noisy_labels(f"labels:{tmp_path / 'bad.npy'}", truth, K, seed=0)


def test_missing_key(human_pt, truth):
    with pytest.raises(LimitlabError, match=r"has no key 'noisy_label'; its keys are clean_label, worse_label"):
        noise.noisy_labels(f"labels:{human_pt}:noisy_label", truth, K, seed=0)


def test_no_key_for_a_dict(human_pt, truth):
    with pytest.raises(LimitlabError, match=r"holds several arrays .*; choose one with labels:.*:KEY"):
        noise.noisy_labels(f"labels:{human_pt}", truth, K, seed=0)


def test_clean_label_of_another_dataset(tmp_path, truth):
    path = tmp_path / "other.pt"
    torch.save({"clean_label": (truth + 1) % K, "noisy_label": truth.copy()}, path)
    with pytest.raises(LimitlabError, match=rf"clean_label array of .* disagrees with the dataset's labels on "
                                            rf"{DIGITS_TRAIN} of {DIGITS_TRAIN} examples"):
        noise.noisy_labels(f"labels:{path}:noisy_label", truth, K, seed=0)


def test_missing_file_and_non_integer_lines(tmp_path, truth):
    with pytest.raises(LimitlabError, match="noisy-label file 'nowhere.npy' does not exist"):
        noise.noisy_labels("labels:nowhere.npy", truth, K, seed=0)
    (tmp_path / "x.txt").write_text("1\n2\ncat\n")
    with pytest.raises(LimitlabError, match="'cat' is not an integer label"):
        noise.noisy_labels(f"labels:{tmp_path / 'x.txt'}", truth, K, seed=0)


def test_cli_trains_on_imported_labels_and_refuses_bad_ones(human_pt, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--epochs", "1", "--train-size", "200", "--batch-size", "64", "--quiet"]
    assert main([*args, "--noise", f"labels:{human_pt}:aggre_label", "--out", str(out)]) == 0
    saved = np.load(out / "noisy_labels.npz")
    assert 0 < float(saved["train_rate"]) < 0.3
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main([*args, "--noise", f"labels:{human_pt}:nope", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("limitlab: error: ") and "has no key 'nope'" in err and "\n" not in err
    assert not bad.exists()


def test_cifar_n_presets_name_the_human_label_files():
    from limitlab.experiments.expand import expand

    noises = {s.config.noise for name in ("cifar10n", "cifar100n") for s in expand(name)}
    assert noises == {"labels:cifar10/CIFAR-10_human.pt:aggre_label", "labels:cifar10/CIFAR-10_human.pt:random_label1",
                      "labels:cifar10/CIFAR-10_human.pt:worse_label", "labels:cifar100/CIFAR-100_human.pt:noisy_label"}
