"""The dataset layer: IDX reading/writing, MNIST-format folders, downloads, digits, splits."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from limitlab.data import (DATASETS, ImageData, download, load_dataset, read_idx, resolve_data_dir,
                           split_train_val, write_idx)
from limitlab.errors import LimitlabError

IDX_STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def hand_packed(code: int, array: np.ndarray, be_dtype: str) -> bytes:
    """IDX bytes built by hand (independent of write_idx)."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(be_dtype).tobytes()


def make_mnist_folder(folder, n_train=5, n_test=3, gz=True, seed=0, train_labels=None):
    """A tiny MNIST-format folder: uint8 images [n, 28, 28], labels 0..9. Returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_train, dtype=np.uint8) if train_labels is None else train_labels,
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8)]
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(IDX_STEMS, arrays):
        write_idx(folder / (stem + (".gz" if gz else "")), array)
    return arrays


# ---- IDX format ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("array, code, be", [
    (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10, 0x08, ">u1"),
    (np.array([0, 1, -1, 2**31 - 1, -2**31, 70000], dtype=np.int32), 0x0C, ">i4"),
])
def test_idx_round_trip_and_header(tmp_path, suffix, array, code, be):
    path = tmp_path / f"x-idx{suffix}"
    write_idx(path, array)
    raw = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    assert raw == hand_packed(code, array, be)          # write_idx matches the hand-packed layout
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_read_idx_reads_hand_packed_file(tmp_path):
    array = np.array([[1.5, -2.25], [3.0, 1e30]], dtype=np.float32)
    path = tmp_path / "f.idx"
    path.write_bytes(hand_packed(0x0D, array, ">f4"))
    np.testing.assert_array_equal(read_idx(path), array)


def _valid_bytes():
    return hand_packed(0x08, np.zeros((10, 28, 28), np.uint8), ">u1")


@pytest.mark.parametrize("name, content, expect", [
    ("truncated-idx3-ubyte", _valid_bytes()[:1000], "truncated: expected 7840 data bytes, found 984"),
    ("trailing-idx3-ubyte", _valid_bytes() + b"xx", "trailing garbage"),
    ("magic-idx3-ubyte", b"\x1f\x8b" + _valid_bytes()[2:], "bad magic"),
    ("dtype-idx3-ubyte", b"\0\0\x07" + _valid_bytes()[3:], "unknown dtype code 0x07"),
    ("short-idx3-ubyte", b"\0\0\x08\x03\0\0", "truncated header"),
    ("empty-idx3-ubyte", b"", "bad magic"),
    ("garbage-idx3-ubyte.gz", b"this is not gzip data", "gzip"),
    ("cut-idx3-ubyte.gz", gzip.compress(_valid_bytes())[:40], "gzip"),
])
def test_corrupt_idx_files(tmp_path, name, content, expect):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LimitlabError, match=expect) as info:
        read_idx(path)
    assert name in str(info.value)


def test_missing_idx_file_and_unsupported_dtype(tmp_path):
    with pytest.raises(LimitlabError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")
    with pytest.raises(LimitlabError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


# ---- MNIST-format folders -----------------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist(data_root):
    d = load_dataset("mnist", data_dir=str(data_root), download=False)
    assert d.train_images.shape == (60000, 1, 28, 28) and d.test_images.shape == (10000, 1, 28, 28)
    assert d.train_images.dtype == d.test_images.dtype == torch.uint8
    assert d.train_labels.dtype == d.test_labels.dtype == torch.int64
    assert torch.bincount(d.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(d.test_labels).tolist() == MNIST_TEST_COUNTS
    assert d.num_classes == 10 and d.class_names == [str(i) for i in range(10)]
    assert d.mean == (0.1307,) and d.std == (0.3081,)
    # The official content: the file itself, and the labels as loaded, re-serialised by hand.
    folder = data_root / "mnist"
    path = next(p for p in (folder / "train-labels-idx1-ubyte", folder / "train-labels-idx1-ubyte.gz")
                if p.is_file())
    content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    official = "a25bea736e30d166cdddb491f175f624"
    assert hashlib.md5(content).hexdigest() == official
    reserialised = hand_packed(0x08, d.train_labels.numpy().astype(np.uint8), ">u1")
    assert hashlib.md5(reserialised).hexdigest() == official
    # Mean/std constants agree with the data (to the published precision), via a pixel histogram.
    counts = torch.bincount(d.train_images.flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * values).sum() / counts.sum()
    std = ((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt()
    assert abs(mean.item() - 0.1307) < 1e-4 and abs(std.item() - 0.3081) < 1e-4


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_tiny_idx_folder_loads(tmp_path, gz, name):
    arrays = make_mnist_folder(tmp_path / name, gz=gz)
    d = load_dataset(name, data_dir=tmp_path, download=False)
    assert isinstance(d, ImageData) and d.name == name and d.num_classes == 10
    assert d.train_images.shape == (5, 1, 28, 28) and d.test_images.shape == (3, 1, 28, 28)
    for tensor, array in zip([d.train_images, d.train_labels, d.test_images, d.test_labels], arrays):
        np.testing.assert_array_equal(tensor.numpy().reshape(array.shape), array)
    assert d.train_labels.dtype == torch.int64
    if name == "fashion-mnist":
        assert d.class_names[0] == "T-shirt/top" and d.class_names[9] == "Ankle boot"


def test_plain_file_preferred_over_gz(tmp_path):
    make_mnist_folder(tmp_path / "mnist", gz=True, seed=1)
    plain = make_mnist_folder(tmp_path / "mnist", gz=False, seed=2)
    d = load_dataset("mnist", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(d.train_labels.numpy(), plain[1])


def test_idx_folder_inconsistent(tmp_path):
    folder = tmp_path / "mnist"
    make_mnist_folder(folder)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(LimitlabError, match="5 images but .*train-labels-idx1-ubyte.gz has 4 labels"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10, 3], np.uint8))
    with pytest.raises(LimitlabError, match="label 10, outside 0..9"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros((5, 2), np.uint8))
    with pytest.raises(LimitlabError, match="not uint8 labels"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_missing_files_without_download(tmp_path):
    folder = tmp_path / "mnist"
    make_mnist_folder(folder)
    for stem in IDX_STEMS[2:]:
        (folder / f"{stem}.gz").unlink()
    with pytest.raises(LimitlabError) as info:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert "train-images" not in message and str(folder) in message
    assert download.BASE_URLS["mnist"] in message and "switched off" in message


def _mirror(tmp_path, monkeypatch, name="mnist"):
    """A local file:// mirror holding a tiny dataset; returns its arrays and the .gz md5s."""
    mirror = tmp_path / "mirror"
    arrays = make_mnist_folder(mirror)
    md5s = {f"{s}.gz": hashlib.md5((mirror / f"{s}.gz").read_bytes()).hexdigest() for s in IDX_STEMS}
    monkeypatch.setitem(download.BASE_URLS, name, mirror.as_uri() + "/")
    return arrays, md5s


def test_download_with_good_checksums(tmp_path, monkeypatch):
    arrays, md5s = _mirror(tmp_path, monkeypatch)
    monkeypatch.setitem(download.CHECKSUMS, "mnist", md5s)
    d = load_dataset("mnist", data_dir=tmp_path / "root")
    assert sorted(p.name for p in (tmp_path / "root" / "mnist").iterdir()) == sorted(md5s)
    np.testing.assert_array_equal(d.test_labels.numpy(), arrays[3])


def test_download_with_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    _, md5s = _mirror(tmp_path, monkeypatch)
    monkeypatch.setitem(download.CHECKSUMS, "mnist", dict(md5s, **{"train-images-idx3-ubyte.gz": "0" * 32}))
    with pytest.raises(LimitlabError, match="corrupt.*md5"):
        load_dataset("mnist", data_dir=tmp_path / "root")
    assert list((tmp_path / "root" / "mnist").iterdir()) == []


def test_download_unreachable(tmp_path, monkeypatch):
    monkeypatch.setitem(download.BASE_URLS, "mnist", (tmp_path / "no-such-mirror").as_uri() + "/")
    with pytest.raises(LimitlabError, match="MNIST not found.*could not download them") as info:
        load_dataset("mnist", data_dir=tmp_path / "root")
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert not any((tmp_path / "root" / "mnist").iterdir())


# ---- the embedded digits, names, locations ------------------------------------------------------

def test_digits():
    d = load_dataset("digits")
    assert d.name == "digits" and d.num_classes == 10 and len(d.class_names) == 10
    assert d.train_images.shape == (1297, 1, 8, 8) and d.test_images.shape == (500, 1, 8, 8)
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    assert set(d.train_labels.tolist()) == set(d.test_labels.tolist()) == set(range(10))
    assert d.train_images.max() == 255 and d.train_images.min() == 0
    pixels = d.train_images.double() / 255
    assert d.mean[0] == pytest.approx(pixels.mean().item())
    assert d.std[0] == pytest.approx(pixels.std(correction=0).item())
    again = load_dataset("digits")   # the test split is fixed, not drawn per call
    assert torch.equal(again.test_images, d.test_images) and torch.equal(again.test_labels, d.test_labels)
    # Together, train and test are exactly the csv's rows (pixels 0..16 scaled by 255/16).
    from importlib import resources
    csv = np.loadtxt(gzip.open(resources.files("limitlab.data") / "digits.csv.gz"), delimiter=",")
    expected = np.column_stack([np.round(csv[:, :64] * 255 / 16), csv[:, 64]])
    got = np.column_stack([torch.cat([d.train_images, d.test_images]).reshape(-1, 64).numpy(),
                           torch.cat([d.train_labels, d.test_labels]).numpy()]).astype(float)
    sort = lambda rows: rows[np.lexsort(rows.T[::-1])]
    np.testing.assert_array_equal(sort(got), sort(expected))


def test_unknown_dataset_lists_names():
    with pytest.raises(LimitlabError) as e:
        load_dataset("cifar-11")
    assert all(name in str(e.value) for name in DATASETS)


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LIMITLAB_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("LIMITLAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path / ".cache" / "limitlab"


# ---- train/validation split ---------------------------------------------------------------------

def test_split_sizes_disjoint_cover_deterministic():
    train, val = split_train_val(60000, 0.2, seed=3)
    assert len(train) == 48000 and len(val) == 12000
    assert train.dtype == val.dtype == np.int64
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(60000))
    again = split_train_val(60000, 0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    other = split_train_val(60000, 0.2, seed=4)
    assert not np.array_equal(other[1], val)
    t, v = split_train_val(1297, 0.2, seed=0)
    assert len(v) == 259 and len(t) == 1038


def test_split_train_size_subset():
    train, val = split_train_val(60000, 0.2, seed=3)
    small, val_small = split_train_val(60000, 0.2, seed=3, train_size=1000)
    assert len(small) == 1000 and np.array_equal(val_small, val)
    assert np.array_equal(small, train[:1000])     # nested in the full training part
    assert np.array_equal(split_train_val(60000, 0.2, seed=3, train_size=48000)[0], train)


@pytest.mark.parametrize("kwargs, expect", [
    (dict(train_size=0), "between 1 and 48000"),
    (dict(train_size=48001), "between 1 and 48000"),
    (dict(val_fraction=1.0), r"\[0, 1\)"),
    (dict(val_fraction=-0.1), r"\[0, 1\)"),
])
def test_split_bad_arguments(kwargs, expect):
    args = dict(num_train=60000, val_fraction=0.2, seed=0) | kwargs
    with pytest.raises(LimitlabError, match=expect):
        split_train_val(**args)
