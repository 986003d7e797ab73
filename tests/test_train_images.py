"""CPU smoke runs of the image paths: CIFAR-shaped data (official pickle format, tiny) with
on-device crop/flip and a ResNet, and streamed image files (imagefolder, Clothing1M layout)."""

import json

import numpy as np
import pytest

from limitlab.cli import main
from test_data_images import cifar10_files, write_folder


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def test_cifar_shaped_training_smoke(tmp_path, capsys):
    write_folder(tmp_path / "data" / "cifar10" / "cifar-10-batches-py", cifar10_files())
    out = tmp_path / "run"
    code = main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--model", "resnet18",
                 "--noise", "pair-cifar10:0.4", "--method", "ce", "--epochs", "1", "--batch-size", "8",
                 "--device", "cpu", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = _summary(out)
    assert summary["train_size"] == 16 and summary["epochs_run"] == 1  # 20 images, 20% validation
    assert 0.0 <= summary["test_accuracy"] <= 1.0


def _image_tree(root, classes=("cat", "dog"), per_class=4, splits=("train", "test")):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for split in splits:
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_imagefolder_streamed_training_smoke(tmp_path, capsys):
    _image_tree(tmp_path / "mine")
    out = tmp_path / "run"
    code = main(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "mine"), "--model", "resnet18",
                 "--image-size", "14", "--workers", "0", "--method", "ce", "--epochs", "2", "--batch-size", "4",
                 "--val-fraction", "0.25", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = _summary(out)
    assert summary["train_size"] == 6 and summary["test_accuracy"] is not None
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["memorized_fraction"] is None or np.isnan(rows[-1]["memorized_fraction"])  # no noise added


def test_clothing1m_layout_uses_its_own_clean_validation(tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    root = tmp_path / "data" / "clothing1m"
    rng = np.random.default_rng(1)
    lines = {"noisy_train.txt": [], "clean_val.txt": [], "clean_test.txt": []}
    for n, name in enumerate(["noisy_train.txt"] * 6 + ["clean_val.txt"] * 3 + ["clean_test.txt"] * 3):
        path = f"images/{n % 2}/0{n % 3}/{n}.jpg"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / path)
        lines[name].append(f"{path} {n % 14}")
    for name, rows in lines.items():
        (root / name).write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    code = main(["train", "--dataset", "clothing1m", "--data-dir", str(tmp_path / "data"), "--model", "resnet18",
                 "--image-size", "16", "--workers", "0", "--method", "ce", "--epochs", "1", "--batch-size", "3",
                 "--train-eval-every", "0", "--quiet", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    labels = np.load(out / "noisy_labels.npz")
    assert len(labels["train_noisy"]) == 6 and len(labels["val_labels"]) == 3  # clean_val kept as validation
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert row["train_noisy_accuracy"] is None  # the training-set pass was switched off


def test_missing_image_in_a_worker_is_one_sentence(tmp_path, capsys):
    _image_tree(tmp_path / "mine", per_class=3)
    (tmp_path / "mine" / "train" / "cat" / "1.png").write_bytes(b"not a png")
    code = main(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "mine"), "--model", "resnet18",
                 "--image-size", "14", "--workers", "1", "--epochs", "1", "--batch-size", "2", "--quiet",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code != 0 and "1.png" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
