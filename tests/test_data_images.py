"""CIFAR (official python-version pickles), batch-wise crop/flip, and image-file datasets
(Clothing1M annotation files, image folders), all on tiny files written here in the official formats."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import pickle
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from limitlab.data import FileData, ImageData, ImageFiles, download, load_dataset
from limitlab.data.augment import random_crop_flip
from limitlab.data.files import CLOTHING1M_CLASSES, load_clothing1m, load_imagefolder
from limitlab.errors import LimitlabError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------------------------------------------- CIFAR

def _batch(rng, n, label_key=b"labels", num_classes=10, extra=None):
    """A batch dict as in the official files: bytes keys, uint8 data [n, 3072], list of int labels."""
    return {b"batch_label": b"tiny batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, num_classes, n).tolist(),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)], **(extra or {})}


def cifar10_files(seed=0) -> dict[str, bytes]:
    """The pickled files of a tiny CIFAR-10: 5 training batches of 4 images, a test batch of 3, meta."""
    rng = np.random.default_rng(seed)
    files = {f"data_batch_{i}": _batch(rng, 4) for i in range(1, 6)}
    files["test_batch"] = _batch(rng, 3)
    files["batches.meta"] = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": 4,
                             b"num_vis": 3072}
    return {name: pickle.dumps(obj, protocol=3) for name, obj in files.items()}


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)


def write_archive(path: Path, subfolder: str, files: dict[str, bytes]) -> None:
    """A .tar.gz with the official member layout (``subfolder/name``, plus a readme)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in {"readme.html": b"<html></html>", **files}.items():
            info = tarfile.TarInfo(f"{subfolder}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def expected_cifar10(files):
    batches = [pickle.loads(files[f"data_batch_{i}"]) for i in range(1, 6)]
    test = pickle.loads(files["test_batch"])
    return (np.concatenate([b[b"data"] for b in batches]), sum((b[b"labels"] for b in batches), []),
            test[b"data"], test[b"labels"])


def check_cifar10(d: ImageData, files) -> None:
    train_rows, train_labels, test_rows, test_labels = expected_cifar10(files)
    assert isinstance(d, ImageData) and d.name == "cifar10" and d.num_classes == 10
    assert d.train_images.shape == (20, 3, 32, 32) and d.train_images.dtype == torch.uint8
    assert d.test_images.shape == (3, 3, 32, 32) and d.test_labels.dtype == torch.int64
    assert d.train_labels.tolist() == train_labels and d.test_labels.tolist() == test_labels
    assert d.class_names == CIFAR10_NAMES and d.augmentation == "crop-flip"
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2470, 0.2435, 0.2616)
    # A row is 1024 red, 1024 green, 1024 blue values, each 32x32 in row-major order.
    images = d.train_images.numpy()
    for i, c, h, w in [(0, 0, 0, 0), (0, 1, 0, 5), (7, 2, 31, 0), (19, 1, 3, 30), (12, 0, 17, 9)]:
        assert images[i, c, h, w] == train_rows[i, c * 1024 + h * 32 + w]
    assert d.test_images.numpy()[2, 2, 31, 31] == test_rows[2, 3071]


def test_cifar10_from_extracted_folder(tmp_path):
    files = cifar10_files()
    write_folder(tmp_path / "cifar10" / "cifar-10-batches-py", files)
    check_cifar10(load_dataset("cifar10", data_dir=tmp_path, download=False), files)


def test_cifar10_files_directly_in_folder(tmp_path):
    files = cifar10_files()
    write_folder(tmp_path / "cifar10", files)
    check_cifar10(load_dataset("CIFAR10", data_dir=tmp_path, download=False), files)


def test_cifar10_from_archive_in_place(tmp_path):
    files = cifar10_files()
    write_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    check_cifar10(load_dataset("cifar10", data_dir=tmp_path, download=False), files)
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == ["cifar-10-python.tar.gz"]


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    train = _batch(rng, 5, b"fine_labels", 100, {b"coarse_labels": [19] * 5})
    test = _batch(rng, 2, b"fine_labels", 100, {b"coarse_labels": [19] * 2})
    train[b"fine_labels"][0] = 99
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}
    files = {name: pickle.dumps(obj) for name, obj in (("train", train), ("test", test), ("meta", meta))}
    write_archive(tmp_path / "cifar100" / "cifar-100-python.tar.gz", "cifar-100-python", files)
    d = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert d.num_classes == 100 and d.class_names[99] == "class99" and d.augmentation == "crop-flip"
    assert d.train_labels.tolist() == train[b"fine_labels"] and d.test_labels.tolist() == test[b"fine_labels"]
    assert d.train_images.shape == (5, 3, 32, 32) and d.mean == (0.5071, 0.4865, 0.4409)
    np.testing.assert_array_equal(d.test_images.numpy().reshape(2, -1), test[b"data"])


class Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2 and NumPy 1.x did for the official files: strings as
    SHORT_BINSTRING/BINSTRING and arrays via numpy.core.multiarray._reconstruct."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj):
        size = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([size]) if size < 256 else pickle.BINSTRING + struct.pack("<i", size))
        self.write(obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode())

    dispatch[bytes], dispatch[str] = save_bytes, save_str


def test_cifar_pickles_written_by_python_2(tmp_path):
    files, originals = {}, cifar10_files()
    for name, raw in originals.items():
        out = io.BytesIO()
        Py2Pickler(out, protocol=2).dump(pickle.loads(raw))
        files[name] = out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in files["test_batch"] and b"U\x04data" in files["test_batch"]
    write_folder(tmp_path / "cifar10", files)
    check_cifar10(load_dataset("cifar10", data_dir=tmp_path, download=False), originals)


def test_cifar_truncated_archive(tmp_path):
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    write_archive(archive, "cifar-10-batches-py", cifar10_files())
    archive.write_bytes(archive.read_bytes()[:600])
    with pytest.raises(LimitlabError, match="truncated or corrupt") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(archive) in str(info.value)


def test_cifar_archive_missing_member(tmp_path):
    files = cifar10_files()
    del files["test_batch"]
    write_archive(tmp_path / "cifar10" / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    with pytest.raises(LimitlabError, match="lacks cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)


@pytest.mark.parametrize("content, message", [
    (b"\x80\x04 this is not a pickle", "not a valid CIFAR pickle"),
    (pickle.dumps([1, 2, 3]), "not the dict of a CIFAR file"),
    (pickle.dumps({b"data": np.zeros((4, 1000), np.uint8), b"labels": [0] * 4}), r"uint8 b'data' array \[N, 3072\]"),
    (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3}), "4 integer labels"),
    (pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 10, 2]}), "label 10, outside 0..9"),
])
def test_cifar_bad_batch_names_the_file(tmp_path, content, message):
    files = cifar10_files()
    files["data_batch_3"] = content
    write_folder(tmp_path / "cifar10", files)
    with pytest.raises(LimitlabError, match=message) as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(tmp_path / "cifar10" / "data_batch_3") in str(info.value)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    files = cifar10_files()
    files["test_batch"] = pickle.dumps({b"data": _Exploit(marker), b"labels": []})
    write_folder(tmp_path / "cifar10", files)
    with pytest.raises(LimitlabError, match=r"test_batch was refused: it asks to run (posix|os|nt)\.system"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()


def test_cifar_missing_without_download(tmp_path):
    with pytest.raises(LimitlabError, match="CIFAR-10 not found: put cifar-10-python.tar.gz") as info:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "cifar10") in message and "cifar-10-batches-py/" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message and "switched off" in message


def _cifar_mirror(tmp_path, monkeypatch, md5=None):
    mirror = tmp_path / "mirror"
    files = cifar10_files()
    write_archive(mirror / "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    good = hashlib.md5((mirror / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    monkeypatch.setitem(download.BASE_URLS, "cifar10", mirror.as_uri() + "/")
    monkeypatch.setitem(download.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz": md5 or good})
    return files


def test_cifar_download_with_good_checksum(tmp_path, monkeypatch):
    files = _cifar_mirror(tmp_path, monkeypatch)
    check_cifar10(load_dataset("cifar10", data_dir=tmp_path / "root"), files)
    assert [p.name for p in (tmp_path / "root" / "cifar10").iterdir()] == ["cifar-10-python.tar.gz"]


def test_cifar_download_with_bad_checksum_leaves_nothing(tmp_path, monkeypatch):
    _cifar_mirror(tmp_path, monkeypatch, md5="0" * 32)
    with pytest.raises(LimitlabError, match="corrupt.*md5"):
        load_dataset("cifar10", data_dir=tmp_path / "root")
    assert list((tmp_path / "root" / "cifar10").iterdir()) == []


def test_cifar_download_unreachable(tmp_path, monkeypatch):
    monkeypatch.setitem(download.BASE_URLS, "cifar10", (tmp_path / "no-mirror").as_uri() + "/")
    with pytest.raises(LimitlabError, match="CIFAR-10 not found.*could not download it"):
        load_dataset("cifar10", data_dir=tmp_path / "root")


def test_registry_and_default_augmentation():
    assert load_dataset("digits").augmentation is None


# ------------------------------------------------------------------------------------ augmentation

def _windows(images, padding):
    """Every candidate output, in NumPy: {(dy, dx, flip): uint8 [B, C, H, W]} cut from the zero-padded input."""
    images = images.numpy()
    h, w = images.shape[2:]
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = {}
    for dy, dx in itertools.product(range(2 * padding + 1), repeat=2):
        window = padded[:, :, dy:dy + h, dx:dx + w]
        out[dy, dx, False], out[dy, dx, True] = window, window[..., ::-1]
    return out


def test_crop_flip_is_a_shifted_or_flipped_window_per_image():
    """Reference: a plain loop over images that finds the one window each output equals."""
    images = torch.randint(1, 256, (32, 3, 10, 12), dtype=torch.uint8)
    out = random_crop_flip(images, padding=3, generator=torch.Generator().manual_seed(5))
    assert out.shape == images.shape and out.dtype == torch.uint8
    candidates, out = _windows(images, 3), out.numpy()
    for i in range(len(images)):
        matches = [key for key, window in candidates.items() if np.array_equal(window[i], out[i])]
        assert len(matches) == 1, f"image {i} is not exactly one shifted/flipped window: {matches}"


def test_crop_flip_is_reproducible_and_covers_every_offset():
    images = torch.randint(1, 256, (4000, 1, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, random_crop_flip(images, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(out, random_crop_flip(images, generator=torch.Generator().manual_seed(1)))
    candidates, out = _windows(images, 4), out.numpy().reshape(4000, -1)
    keys = list(candidates)
    match = np.stack([(window.reshape(4000, -1) == out).all(1) for window in candidates.values()])  # [K, B]
    assert (match.sum(0) == 1).all()
    chosen = [keys[k] for k in match.argmax(0)]
    assert {dy for dy, _, _ in chosen} == set(range(9)) and {dx for _, dx, _ in chosen} == set(range(9))
    assert 1850 < sum(flip for _, _, flip in chosen) < 2150  # 2000 +- 4.7 sd
    assert random_crop_flip(images[:5]).shape == (5, 1, 8, 8)  # the global RNG when no generator
    assert torch.equal(random_crop_flip(images[:5], padding=0, generator=torch.Generator().manual_seed(0))
                       .flatten(1).sort(1).values, images[:5].flatten(1).sort(1).values)


# -------------------------------------------------------------------------------------- Clothing1M

def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_clothing1m_annotation_files(tmp_path):
    root = tmp_path / "clothing1m"
    write_text(root / "noisy_train.txt", "images/0/00/a.jpg 3\nimages/0/01/b.jpg 13\n\nimages/1/00/c.jpg 0\n")
    write_text(root / "clean_val.txt", "images/2/00/d.jpg 5\n")
    write_text(root / "clean_test.txt", "images/3/00/e.jpg 7\nimages/3/00/f.jpg 8\n")
    d = load_dataset("clothing1m", data_dir=tmp_path)
    assert isinstance(d, FileData) and d.num_classes == 14 and d.class_names == CLOTHING1M_CLASSES
    assert d.root == root and d.image_size == 224 and d.resize == 256 and d.mean == (0.485, 0.456, 0.406)
    assert d.train_files == ["images/0/00/a.jpg", "images/0/01/b.jpg", "images/1/00/c.jpg"]
    assert d.train_labels.tolist() == [3, 13, 0] and d.train_labels.dtype == np.int64
    assert d.val_files == ["images/2/00/d.jpg"] and d.val_labels.tolist() == [5]
    assert d.test_labels.tolist() == [7, 8]


def test_clothing1m_original_key_lists(tmp_path):
    root = tmp_path / "clothing1m"
    write_text(root / "noisy_label_kv.txt", "images/a.jpg 1\nimages/b.jpg 2\nimages/v.jpg 9\n")
    write_text(root / "clean_label_kv.txt", "images/a.jpg 4\nimages/v.jpg 6\nimages/t.jpg 11\n")
    write_text(root / "noisy_train_key_list.txt", "images/b.jpg\nimages/a.jpg\n")
    write_text(root / "clean_val_key_list.txt", "images/v.jpg\n")
    write_text(root / "clean_test_key_list.txt", "images/t.jpg\n")
    d = load_clothing1m(root)
    assert d.train_files == ["images/b.jpg", "images/a.jpg"] and d.train_labels.tolist() == [2, 1]  # noisy kv
    assert d.val_labels.tolist() == [6] and d.test_files == ["images/t.jpg"] and d.test_labels.tolist() == [11]
    write_text(root / "clean_test_key_list.txt", "images/t.jpg\nimages/b.jpg\n")
    with pytest.raises(LimitlabError, match="clean_test_key_list.txt, line 2: images/b.jpg has no label") as info:
        load_clothing1m(root)
    assert str(root / "clean_label_kv.txt") in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("images/a.jpg 1\nimages/b.jpg\n", r"noisy_train.txt, line 2: expected 'images/PATH.jpg LABEL'"),
    ("images/a.jpg one\n", "line 1: expected"),
    ("images/a.jpg 1\nimages/b.jpg 14\n", "noisy_train.txt, line 2: label 14 is outside 0..13"),
    ("images/a.jpg -1\n", "label -1 is outside"),
])
def test_clothing1m_bad_lines(tmp_path, text, message):
    write_text(tmp_path / "noisy_train.txt", text)
    write_text(tmp_path / "clean_val.txt", "images/v.jpg 0\n")
    write_text(tmp_path / "clean_test.txt", "images/t.jpg 0\n")
    with pytest.raises(LimitlabError, match=message):
        load_clothing1m(tmp_path)


def test_clothing1m_missing(tmp_path):
    write_text(tmp_path / "clothing1m" / "noisy_train.txt", "images/a.jpg 1\n")
    with pytest.raises(LimitlabError, match="Clothing1M not found") as info:
        load_dataset("clothing1m", data_dir=tmp_path)
    message = str(info.value)
    assert "lacks clean_val.txt, clean_test.txt" in message and str(tmp_path / "clothing1m") in message
    assert "https://github.com/Cysu/noisy_label" in message and "noisy_label_kv.txt" in message


# --------------------------------------------------------------------------------- decoding images

def _write_images(root: Path):
    """A 60x40 RGB JPEG, a 40x50 RGB PNG and a 45x45 greyscale PNG; returns their pixel arrays."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    arrays = {"a/rgb.jpg": rng.integers(0, 256, (40, 60, 3), dtype=np.uint8),
              "a/rgb.png": rng.integers(0, 256, (50, 40, 3), dtype=np.uint8),
              "b/grey.png": rng.integers(0, 256, (45, 45), dtype=np.uint8)}
    for name, array in arrays.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(root / name)
    return arrays


def test_image_files_train_and_eval(tmp_path):
    arrays = _write_images(tmp_path)
    files, labels = list(arrays), np.array([3, 0, 1])
    evaluation = ImageFiles(tmp_path, files, labels, train=False, resize=40, image_size=32)
    training = ImageFiles(tmp_path, files, labels, train=True, resize=40, image_size=32)
    assert len(evaluation) == 3
    for i, dataset in itertools.product(range(3), (evaluation, training)):
        image, label, index = dataset[i]
        assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
        assert label.dtype == torch.int64 and label.item() == labels[i] and index == i
    # The PNG's shorter side is already 40: eval is its exact centre crop, train a (flipped) window of it.
    png = torch.from_numpy(arrays["a/rgb.png"]).permute(2, 0, 1)
    assert torch.equal(evaluation[1][0], png[:, 9:41, 4:36])
    torch.manual_seed(0)
    for _ in range(4):
        crop = training[1][0]
        assert any(torch.equal(crop, window) for top, left in itertools.product(range(19), range(9))
                   for window in (png[:, top:top + 32, left:left + 32], png[:, top:top + 32, left:left + 32].flip(-1)))
    grey = evaluation[2][0]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # converted to RGB
    batch = next(iter(torch.utils.data.DataLoader(evaluation, batch_size=3)))
    assert batch[0].shape == (3, 3, 32, 32) and batch[1].tolist() == [3, 0, 1] and batch[2].dtype == torch.int64


def test_image_files_missing_or_broken_image(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    dataset = ImageFiles(tmp_path, ["gone.jpg", "broken.jpg"], np.array([0, 1]), train=False,
                         resize=40, image_size=32)
    with pytest.raises(LimitlabError, match=f"image {tmp_path / 'gone.jpg'} does not exist"):
        dataset[0]
    with pytest.raises(LimitlabError, match=f"cannot decode image {tmp_path / 'broken.jpg'}"):
        dataset[1]
    with pytest.raises(LimitlabError, match="crop size"):
        ImageFiles(tmp_path, ["x.jpg"], np.array([0]), train=True, resize=30, image_size=32)


def test_image_files_without_pillow(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `import PIL` fail
    with pytest.raises(LimitlabError, match=r"needs Pillow: pip install 'limitlab\[images\]'"):
        ImageFiles(tmp_path, ["x.jpg"], np.array([0]), train=False)


# ------------------------------------------------------------------------------------ image folder

def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def test_imagefolder_class_folders(tmp_path):
    touch(tmp_path, "train/dog/2.png", "train/dog/1.JPG", "train/cat/x.jpeg", "train/cat/sub/y.jpg",
          "train/cat/notes.txt", "train/zebra/z.webp", "test/dog/t.png", "test/cat/u.png")
    d = load_dataset("imagefolder", data_dir=tmp_path)
    assert isinstance(d, FileData) and d.name == "imagefolder" and d.root == tmp_path
    assert d.class_names == ["cat", "dog", "zebra"] and d.num_classes == 3
    assert d.train_files == ["train/cat/sub/y.jpg", "train/cat/x.jpeg", "train/dog/1.JPG", "train/dog/2.png",
                             "train/zebra/z.webp"]
    assert d.train_labels.tolist() == [0, 0, 1, 1, 2] and d.train_labels.dtype == np.int64
    assert d.val_files is None and d.val_labels is None
    assert d.test_files == ["test/cat/u.png", "test/dog/t.png"] and d.test_labels.tolist() == [0, 1]
    touch(tmp_path, "val/horse/h.png")
    with pytest.raises(LimitlabError, match="horse is not one of the classes"):
        load_imagefolder(tmp_path)


def test_imagefolder_csv_with_class_names(tmp_path):
    write_text(tmp_path / "labels.csv", "path,label,split\nimgs/b.png,dog,\nimgs/a.png,cat,train\n"
                                        "imgs/c.png,bird,val\n\nimgs/d.png,dog,test\n")
    d = load_imagefolder(tmp_path)
    assert d.class_names == ["bird", "cat", "dog"]
    assert d.train_files == ["imgs/a.png", "imgs/b.png"] and d.train_labels.tolist() == [1, 2]
    assert d.val_files == ["imgs/c.png"] and d.val_labels.tolist() == [0] and d.test_labels.tolist() == [2]


def test_imagefolder_csv_with_integer_labels(tmp_path):
    write_text(tmp_path / "labels.csv", "path,label\nb.png,3\na.png,0\n")
    d = load_imagefolder(tmp_path)
    assert d.class_names == ["0", "1", "2", "3"] and d.num_classes == 4
    assert d.train_files == ["a.png", "b.png"] and d.train_labels.tolist() == [0, 3]
    assert d.val_files is None and d.test_files is None


@pytest.mark.parametrize("text, message", [
    ("file,class\na.png,cat\n", "must start with the header line path,label"),
    ("path,label,split\na.png,cat,holdout\n", "line 2: split 'holdout' is not train, val or test"),
    ("path,label\na.png,cat\nb.png\n", "line 3: expected 2 fields"),
    ("path,label,split\na.png,cat,test\n", "lists no training images"),
])
def test_imagefolder_csv_errors(tmp_path, text, message):
    write_text(tmp_path / "labels.csv", text)
    with pytest.raises(LimitlabError, match=message):
        load_imagefolder(tmp_path)


def test_imagefolder_needs_a_layout(tmp_path):
    with pytest.raises(LimitlabError, match="neither a train/ folder"):
        load_imagefolder(tmp_path)
    with pytest.raises(LimitlabError, match="needs --data-dir"):
        load_dataset("imagefolder")
