"""Label-error detection: the metrics against brute force and hand computation, and detect() end to
end on tiny digits runs (seconds)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from limitlab.analysis import detect as detect_mod
from limitlab import metrics
from limitlab.config import Config
from limitlab.analysis.detect import detect
from limitlab.errors import LimitlabError
from limitlab.train import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- metrics
def brute_auroc(scores, is_error):
    pos, neg = scores[is_error], scores[~is_error]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_auroc_matches_pairwise_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        scores = rng.integers(0, 5, n).astype(float)  # many ties
        is_error = rng.random(n) < 0.4
        if is_error.all() or not is_error.any():
            continue
        assert metrics.auroc(scores, is_error) == pytest.approx(brute_auroc(scores, is_error))


def test_auroc_constructed_cases():
    is_error = np.array([True, True, False, False, False])
    assert metrics.auroc(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), is_error) == 1.0
    assert metrics.auroc(np.array([0.0, 0.1, 0.5, 0.6, 0.7]), is_error) == 0.0
    assert metrics.auroc(np.ones(5), is_error) == 0.5
    assert np.isnan(metrics.auroc(np.arange(5.0), np.zeros(5, bool)))
    assert np.isnan(metrics.auroc(np.arange(5.0), np.ones(5, bool)))


def test_precision_recall_at_k_by_hand():
    scores = np.array([0.1, 0.9, 0.8, 0.3, 0.7, 0.2])
    is_error = np.array([False, True, False, True, True, False])  # 3 errors
    # top 2: indices 1 (error), 2 (clean)
    assert metrics.precision_recall_at_k(scores, is_error, 2) == pytest.approx((0.5, 1 / 3))
    # top 4: 1, 2, 4, 3 -> 3 errors
    assert metrics.precision_recall_at_k(scores, is_error, 4) == pytest.approx((0.75, 1.0))
    assert metrics.precision_recall_at_k(scores, is_error, 100) == pytest.approx((0.5, 1.0))  # k clipped to N
    with pytest.raises(ValueError):
        metrics.precision_recall_at_k(scores, is_error, 0)


def test_flagged_metrics_by_hand():
    flagged = np.array([True, True, False, False, True])
    is_error = np.array([True, False, True, False, True])
    m = metrics.flagged_metrics(flagged, is_error)  # tp 2, flagged 3, errors 3
    assert m == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert np.isnan(metrics.flagged_metrics(np.zeros(5, bool), is_error)["precision"])


def test_label_error_scores_by_hand():
    probs_f = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    probs_q = np.array([[0.6, 0.3, 0.1], [0.5, 0.25, 0.25]])
    labels = np.array([0, 1])
    s = metrics.label_error_scores(probs_f, labels, probs_q)
    np.testing.assert_allclose(s["classifier_disagreement"], [0.3, 0.9])
    # e_0 - q0 = (0.4, -0.3, -0.1); e_1 - q1 = (-0.5, 0.75, -0.25)
    np.testing.assert_allclose(s["limit_gradient_mismatch"],
                               [np.sqrt(0.16 + 0.09 + 0.01), np.sqrt(0.25 + 0.5625 + 0.0625)])
    # ‖ĝ − g‖ with ĝ = s(f) − s(q), g = s(f) − e_y
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(s["limit_gradient_mismatch"],
                               np.linalg.norm((probs_f - probs_q) - (probs_f - onehot), axis=1))
    assert set(metrics.label_error_scores(probs_f, labels)) == {"classifier_disagreement"}


# --------------------------------------------------------------------------- detect() end to end
def tiny_config(method):
    return Config(dataset="digits", noise="uniform:0.5", train_size=200, epochs=2, batch_size=64,
                  method=method, device="cpu")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("detect_runs")
    for method in ("limit-l", "ce"):
        train(tiny_config(method), root / method, progress=False)
    return root


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method,score", [("limit-l", "limit_gradient_mismatch"), ("ce", "averaged_margin")])
def test_detect_end_to_end(runs, tmp_path, method, score):
    out = tmp_path / "out"
    summary = detect(runs / method, top=16, out=out, progress=False, split="train")
    assert summary["score"] == score and summary["n"] == 200 and summary["splits_scored"] == ["train"]
    rows = read_csv(out / "label_errors.csv")
    assert list(rows[0]) == ["rank", "split", "index", "given_label", "predicted_label", "score", "is_label_issue",
                             "label_quality", "is_corrupted"]
    assert [int(r["rank"]) for r in rows] == list(range(1, 201))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    # cleanlab's columns: an issue is a prediction that differs from the given label; quality is the
    # score on a fixed [0, 1] scale, low = suspicious (1 - score / sqrt(2) for LIMIT, the normalized
    # margin (1 + margin) / 2 for CE)
    top = 2 ** 0.5 if score == "limit_gradient_mismatch" else 1.0
    for r in rows:
        assert r["is_label_issue"] == str(r["given_label"] != r["predicted_label"])
        assert float(r["label_quality"]) == pytest.approx(1 - float(r["score"]) / top, abs=2e-6)
    assert summary["num_flagged"] == sum(r["is_label_issue"] == "True" for r in rows)
    saved = np.load(runs / method / "noisy_labels.npz")
    assert sorted(int(r["index"]) for r in rows) == sorted(saved["train_index"].tolist())
    by_index = dict(zip(saved["train_index"].tolist(), zip(saved["train_noisy"].tolist(),
                                                           saved["train_corrupted"].tolist())))
    for r in rows:
        assert (int(r["given_label"]), bool(int(r["is_corrupted"]))) == by_index[int(r["index"])]
        assert r["split"] == "train"

    written = json.loads((out / "detection.json").read_text())
    assert written == json.loads(json.dumps(summary))
    numbers = [*written["auroc"].values(), *written["precision_at_k"].values(), *written["recall_at_k"].values(),
               *written["flagged"].values()]
    assert set(written["precision_at_k"]) == {"16", str(written["num_corrupted"])}
    assert numbers and all(0.0 <= x <= 1.0 for x in numbers)
    expected_scores = {"classifier_disagreement", "classifier_margin", "limit_gradient_mismatch"} \
        if method == "limit-l" else {"classifier_disagreement", "classifier_margin", "averaged_disagreement",
                                     "averaged_margin"}  # a CE run keeps its epoch-averaged probabilities
    assert set(written["auroc"]) == expected_scores

    png = (out / "suspects.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    import matplotlib.image

    image = matplotlib.image.imread(out / "suspects.png")
    assert image.ndim == 3 and image.shape[0] > 50


def test_detect_writes_into_run_dir_by_default(runs):
    detect(runs / "ce", score="classifier_disagreement", top=4, progress=False)
    assert (runs / "ce" / "label_errors.csv").exists() and (runs / "ce" / "detection.json").exists()


def test_detect_known_answer(runs, tmp_path, monkeypatch):
    """Outputs that put the corrupted examples' given labels lowest: perfect detection."""
    def fake_predict(model, data, split, *, batch_size, runtime=None, proba=False):
        import torch

        true = {id(data.train): data.train_true, id(data.val): torch.as_tensor(data.record["val_true"]),
                id(data.test): data.test.labels}[id(split)]
        return 0.9 * torch.nn.functional.one_hot(true, data.num_classes).float() + 0.1 / data.num_classes

    monkeypatch.setattr(detect_mod, "predict", fake_predict)
    summary = detect(runs / "limit-l", top=10, out=tmp_path, progress=False)
    assert summary["splits_scored"] == ["train", "validation", "test"]
    for part in ("train", "validation"):
        assert set(summary["splits"][part]["auroc"].values()) == {1.0}
    assert summary["splits"]["test"]["num_corrupted"] == 0 and summary["splits"]["test"]["num_flagged"] == 0
    n_err = str(summary["num_corrupted"])
    assert summary["auroc"] == {"classifier_disagreement": 1.0, "classifier_margin": 1.0, "limit_gradient_mismatch": 1.0}
    assert summary["precision_at_k"] == {"10": 1.0, n_err: 1.0}
    assert summary["recall_at_k"][n_err] == 1.0
    assert summary["flagged"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    rows = read_csv(tmp_path / "label_errors.csv")
    k = int(n_err)
    assert all(r["is_corrupted"] == "1" for r in rows[:k]) and all(r["is_corrupted"] == "0" for r in rows[k:])


def test_detect_errors(runs, tmp_path):
    with pytest.raises(LimitlabError, match="needs a LIMIT run"):
        detect(runs / "ce", score="limit_gradient_mismatch", progress=False)
    with pytest.raises(LimitlabError, match="does not exist"):
        detect(tmp_path / "nope", progress=False)
    with pytest.raises(LimitlabError, match="unknown score"):
        detect(runs / "ce", score="loss", progress=False)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text((runs / "ce" / "config.json").read_text())
    with pytest.raises(LimitlabError, match="best.pt"):
        detect(tmp_path / "half", progress=False)


def test_detect_refuses_changed_labels(runs, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(runs / "ce", run)
    saved = dict(np.load(run / "noisy_labels.npz"))
    saved["train_noisy"] = (saved["train_noisy"] + 1) % 10
    np.savez(run / "noisy_labels.npz", **saved)
    with pytest.raises(LimitlabError, match="data files changed"):
        detect(run, progress=False)


def test_suspects_grid_marks_false_alarms_in_red(tmp_path):
    """Grayscale digits: red pixels can only come from a title drawn in red (a false alarm)."""
    import matplotlib.image

    from limitlab.analysis import plots

    images = np.full((2, 1, 8, 8), 128, dtype=np.uint8)

    def red_pixels(colors):
        path = tmp_path / "grid.png"
        path.write_bytes(plots.suspects_grid(images, ["3 → 5", "1 → 7"], heading="top 2", colors=colors))
        rgb = matplotlib.image.imread(path)[..., :3]
        return int(((rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)).sum())

    assert red_pixels(["black", "black"]) == 0
    assert red_pixels(["black", "red"]) > 0


# --------------------------------------------------------------------------- every split
@pytest.mark.parametrize("split", ["train", "validation", "test", "all"])
def test_detect_split_rows_and_index(runs, tmp_path, split):
    """Each --split scores exactly its rows: index = position in the official training set (train and
    validation rows) or test set (test rows), given labels as the run saved or the test set has them."""
    from limitlab.data import load_dataset

    summary = detect(runs / "limit-l", top=8, out=tmp_path, progress=False, split=split)
    rows = read_csv(tmp_path / "label_errors.csv")
    saved = np.load(runs / "limit-l" / "noisy_labels.npz")
    test_labels = load_dataset("digits").test_labels.numpy()
    expected = {"train": dict(zip(saved["train_index"].tolist(), saved["train_noisy"].tolist())),
                "validation": dict(zip(saved["val_index"].tolist(), saved["val_labels"].tolist())),
                "test": dict(enumerate(test_labels.tolist()))}
    wanted = ["train", "validation", "test"] if split == "all" else [split]
    assert summary["splits_scored"] == wanted and len(rows) == summary["n"] == sum(map(len, map(expected.get, wanted)))
    for part in wanted:
        got = {int(r["index"]): int(r["given_label"]) for r in rows if r["split"] == part}
        assert got == expected[part]
        assert summary["splits"][part]["n"] == len(got) and summary["splits"][part]["in_sample"] == (part == "train")
    assert {r["split"] for r in rows} == set(wanted)
    assert [float(r["score"]) for r in rows] == sorted((float(r["score"]) for r in rows), reverse=True)
    corrupted_val = dict(zip(saved["val_index"].tolist(), saved["val_corrupted"].tolist()))
    for r in rows:
        if r["split"] == "test":
            assert r["is_corrupted"] == "0"  # synthetic noise never touches the test labels
        if r["split"] == "validation":
            assert bool(int(r["is_corrupted"])) == corrupted_val[int(r["index"])]


def test_held_out_scores_come_from_the_checkpoint_alone(runs, tmp_path):
    """Validation and test scores are the best checkpoint's predictions on rows it never trained on:
    recomputed here from best.pt and the raw images, and detect leaves the checkpoint unchanged."""
    import hashlib

    import torch

    from limitlab.data import load_dataset
    from limitlab.models import build_model

    run = runs / "limit-l"
    before = hashlib.sha256((run / "checkpoints" / "best.pt").read_bytes()).hexdigest()
    detect(run, score="classifier_disagreement", top=8, out=tmp_path, progress=False, split="test")
    assert hashlib.sha256((run / "checkpoints" / "best.pt").read_bytes()).hexdigest() == before
    ckpt = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    data = load_dataset("digits")
    net = build_model("mlp", tuple(data.test_images.shape[1:]), 10)
    net.load_state_dict(ckpt["classifier"])
    net.eval()
    mean, std = torch.tensor(data.mean).view(-1, 1, 1), torch.tensor(data.std).view(-1, 1, 1)
    with torch.no_grad():
        p = net((data.test_images.float() / 255 - mean) / std).softmax(1).numpy()
    labels = data.test_labels.numpy()
    rows = read_csv(tmp_path / "label_errors.csv")
    got = np.array([float(r["score"]) for r in sorted(rows, key=lambda r: int(r["index"]))])
    np.testing.assert_allclose(got, 1 - p[np.arange(len(labels)), labels], atol=1e-5)
    # the split rows never enter training: the loop only iterates data.train, whose indices exclude them
    saved = np.load(run / "noisy_labels.npz")
    assert not set(saved["train_index"].tolist()) & set(saved["val_index"].tolist())


def test_bad_split_is_one_sentence(runs, tmp_path, capsys):
    from limitlab.cli import main

    out = tmp_path / "out"
    assert main(["detect", str(runs / "ce"), "--split", "training", "--out", str(out), "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown split 'training'" in err and "Traceback" not in err
    assert not (out / "label_errors.csv").exists()
    with pytest.raises(LimitlabError, match="unknown split"):
        detect(runs / "ce", split="", progress=False)


def test_table_rows_of_every_split_point_at_the_file(tmp_path):
    """file_row of train, validation and test rows is the row of the user's file: its label there is
    the given label unless the synthetic noise corrupted it (test rows: never)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 120
    labels = rng.choice(["a", "b", "c"], n)
    frame = pd.DataFrame({"x1": rng.normal(size=n) + (labels == "a"), "x2": rng.normal(size=n), "label": labels})
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = tmp_path / "run"
    train(Config(dataset=f"table:{tmp_path / 't.csv'}", noise="uniform:0.3", epochs=2, batch_size=32, device="cpu"),
          run, progress=False)
    detect(run, progress=False)
    rows = read_csv(run / "label_errors.csv")
    assert sorted(int(r["file_row"]) for r in rows) == list(range(n))  # every row of the file, once
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    for r in rows:
        same = labels[int(r["file_row"])] == r["given_class"]
        assert same != bool(int(r["is_corrupted"]))
        if r["split"] == "test":
            assert same


# --------------------------------------------------------------------------- score functions
def test_margin_score_against_a_loop():
    from limitlab.analysis.scores import margin, margin_score

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=30)
    labels = rng.integers(0, 4, 30)
    expected = [probs[i, labels[i]] - max(probs[i, k] for k in range(4) if k != labels[i]) for i in range(30)]
    np.testing.assert_allclose(margin(probs, labels), expected)
    np.testing.assert_allclose(margin_score(probs, labels), (1 - np.array(expected)) / 2)
    # by hand: given 0.2, best other 0.7 -> margin -0.5, score 0.75; above 1/2 exactly when argmax != label
    assert margin_score(np.array([[0.2, 0.7, 0.1]]), np.array([0]))[0] == pytest.approx(0.75)
    s = margin_score(probs, labels)
    assert ((s > 0.5) == (probs.argmax(1) != labels)).all()
    with pytest.raises(ValueError):
        margin_score(probs, labels + 4)


def test_epoch_average_against_numpy():
    import torch

    from limitlab.epoch_probs import EpochAverage

    rng = np.random.default_rng(2)
    epochs = [rng.dirichlet(np.ones(3), size=5) for _ in range(4)]
    avg = EpochAverage()
    for p in epochs[:2]:
        avg.on_epoch(p)
    for p in epochs[2:]:
        avg.on_epoch(torch.from_numpy(p))  # torch tensors too
    np.testing.assert_allclose(avg.mean, np.mean(np.stack(epochs), 0))
    with pytest.raises(ValueError):
        avg.on_epoch(np.ones((4, 3)))


def test_epoch_probs_records_the_averages(tmp_path):
    """EpochProbs, called as the loop's per-epoch callback, keeps the mean of the networks' training-set
    softmax over all epochs and up to the best one, continues on resume, and skips counted epochs."""
    import torch

    from limitlab.epoch_probs import EpochProbs, read_epoch_probs
    from limitlab.data.run import prepare_data
    from limitlab.train import build_run_objective, predict

    config = tiny_config("limit-l")
    data = prepare_data(config, torch.device("cpu"))
    objective, _ = build_run_objective(config, data)
    seen_f, seen_q = [], []
    recorder = EpochProbs(tmp_path)
    for epoch, val in zip((1, 2, 3), (0.5, 0.7, 0.6)):  # best epoch: 2
        with torch.no_grad():  # a different network each epoch
            for p in objective.parameters():
                p.add_(0.05 * torch.randn_like(p))
        seen_f.append(predict(objective.classifier, data, data.train, batch_size=64, proba=True).numpy())
        seen_q.append(predict(objective.q_network, data, data.train, batch_size=64, proba=True).numpy())
        if epoch == 2:
            recorder = EpochProbs(tmp_path)  # a resumed run reads the file back
            recorder.on_epoch(1, objective, data, {"val_accuracy": 0.9})  # already counted: skipped
        recorder.on_epoch(epoch, objective, data, {"val_accuracy": val})
    saved = read_epoch_probs(tmp_path / "epoch_probs.npz")
    assert int(saved["epochs"]) == 3 and int(saved["last_epoch"]) == 3
    np.testing.assert_allclose(saved["f"], np.mean(seen_f, 0), atol=1e-6)
    np.testing.assert_allclose(saved["q"], np.mean(seen_q, 0), atol=1e-6)
    np.testing.assert_allclose(saved["f_to_best"], np.mean(seen_f[:2], 0), atol=1e-6)
    np.testing.assert_allclose(saved["q_to_best"], np.mean(seen_q[:2], 0), atol=1e-6)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(LimitlabError, match="truncated or corrupt"):
        read_epoch_probs(tmp_path / "bad.npz")


def test_averaged_scores_from_epoch_probs(runs, tmp_path):
    """With epoch_probs.npz, the training rows are scored from the averaged probabilities (here: made
    to be right about every label) and the held-out rows from the checkpoint; auto picks the averaged
    margin for CE and keeps the gradient mismatch for LIMIT; a file of the wrong shape is one sentence."""
    import shutil

    from limitlab import rundir

    for method, expected in (("limit-l", "averaged_disagreement"), ("ce", "averaged_margin")):
        auto = "limit_gradient_mismatch" if method == "limit-l" else expected
        run = tmp_path / method
        shutil.copytree(runs / method, run)
        saved = np.load(run / "noisy_labels.npz")
        true = np.eye(10)[saved["train_true"]] * 0.9 + 0.01
        rundir.save_npz(run / "epoch_probs.npz", f=true, f_to_best=true, epochs=np.int64(2),
                        last_epoch=np.int64(2), best_val_accuracy=np.float64(0.5))
        assert detect(run, top=8, out=tmp_path / "auto", progress=False, split="train")["score"] == auto
        summary = detect(run, score=expected, top=8, out=tmp_path / f"out-{method}", progress=False)
        assert summary["score"] == expected and summary["averaged_over"].startswith(
            "all epochs" if method == "limit-l" else "the epochs up to the best")
        assert summary["splits"]["train"]["auroc"][expected] == 1.0
        assert summary["splits"]["train"]["flagged"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
        plain = detect(run, top=8, out=tmp_path / "plain", progress=False, split="test",
                       score="classifier_margin" if method == "ce" else "classifier_disagreement")
        rows = {r["index"]: r["score"] for r in read_csv(tmp_path / f"out-{method}" / "label_errors.csv")
                if r["split"] == "test"}
        assert rows == {r["index"]: r["score"] for r in read_csv(tmp_path / "plain" / "label_errors.csv")}
        assert plain["averaged_over"] is None
        rundir.save_npz(run / "epoch_probs.npz", f=true[:5], f_to_best=true[:5], epochs=np.int64(2),
                        last_epoch=np.int64(2), best_val_accuracy=np.float64(0.5))
        with pytest.raises(LimitlabError, match="does not match the run's 200 training rows"):
            detect(run, progress=False)


def test_epoch_probs_through_the_training_loop(tmp_path):
    """limitlab train keeps epoch_probs.npz for a method without a q-network (not for LIMIT), and
    detect ranks a CE run by the averaged margin from it."""
    from limitlab.epoch_probs import read_epoch_probs

    train(tiny_config("limit-l"), tmp_path / "limit", progress=False)
    assert not (tmp_path / "limit" / "epoch_probs.npz").exists()
    out = tmp_path / "ce"
    train(tiny_config("ce"), out, progress=False)
    saved = read_epoch_probs(out / "epoch_probs.npz")
    assert int(saved["epochs"]) == 2 and saved["f"].shape == (200, 10) and "q" not in saved
    summary = detect(out, top=8, progress=False)
    assert summary["score"] == "averaged_margin" and summary["averaged_over"].startswith("the epochs up to the best")


def test_epoch_probs_take_the_evaluation_pass_over_the_training_rows(tmp_path, monkeypatch):
    """With a training-split pass every epoch (the default), the average costs no pass of its own,
    and it equals the classifier's softmax averaged over the epochs as predicted at each epoch's end."""
    import limitlab.epoch_probs as epoch_probs
    from limitlab.epoch import predict
    from limitlab.epoch_probs import read_epoch_probs
    from limitlab.loop import EpochCallback

    per_epoch = []
    record = EpochCallback(lambda epoch, objective, data, row: per_epoch.append(
        predict(objective.classifier, data, data.train, batch_size=1024, proba=True).double().numpy()))

    def no_second_pass(*args, **kwargs):
        raise AssertionError("EpochProbs predicted the training rows a second time")

    monkeypatch.setattr(epoch_probs, "predict", no_second_pass)
    out = tmp_path / "ce"
    train(tiny_config("ce"), out, progress=False, callbacks=[record])
    saved = read_epoch_probs(out / "epoch_probs.npz")
    np.testing.assert_allclose(saved["f"], np.mean(per_epoch, axis=0), atol=1e-5)
