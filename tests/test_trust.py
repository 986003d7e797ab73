"""Files limitlab reads are data, never code; --overwrite deletes only a limitlab run; every failure
is one sentence and leaves nothing half-written (checkpoints, run folders, divergence, corrupt
files, config types, detect's paths)."""

from __future__ import annotations

import builtins
import importlib
import json
import math
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from limitlab import rundir
from limitlab.cli import build_parser, main
from limitlab.config import Config
from limitlab.errors import LimitlabError
from limitlab.train import MAX_PARAMETER, divergence, train

TINY = ["--dataset", "digits", "--noise", "uniform:0.3", "--train-size", "200", "--batch-size", "64", "--quiet",
        "--device", "cpu"]


def _fails(capsys, args, *needles):
    """Run the CLI; assert exit 2 with one sentence on stderr (no traceback) that contains ``needles``."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("limitlab: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ce_run(tmp_path_factory):
    """A finished 2-epoch CE run on the embedded digits (copy it before changing it)."""
    out = tmp_path_factory.mktemp("ce") / "run"
    assert main(["train", *TINY, "--method", "ce", "--epochs", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(ce_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(ce_run, dst)
    return dst


# ------------------------------------------------------------------------------ checkpoints as data
class _Payload:
    """Pickles as "call open(marker, 'w')": a file that appears if the pickle is ever executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _malicious_checkpoint(path, marker, template):
    """A checkpoint with the keys of ``template`` whose pickle would create ``marker`` when loaded."""
    ckpt = dict(torch.load(template, weights_only=True))
    ckpt["config"] = {"note": _Payload(marker)}
    torch.save(ckpt, path)


def _corrupt(path, kind):
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[:len(raw) // 2], "empty": b"",
                      "garbage": b"this is not a checkpoint\n" * 40}[kind])


def test_limitlabs_own_checkpoints_load_as_weights_only(run_copy):
    for name, keys in ((rundir.LAST, ("epoch", "objective", "optimizer", "rng", "best", "bad_epochs", "config")),
                       (rundir.BEST, ("epoch", "classifier", "objective", "config"))):
        ckpt = torch.load(run_copy / name, weights_only=True)  # raises if anything but plain data is in it
        assert set(keys) <= set(ckpt)
        assert rundir.load_checkpoint(run_copy / name, keys=keys)["epoch"] >= 1


def test_malicious_checkpoint_is_refused_on_resume(run_copy, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    _malicious_checkpoint(run_copy / rundir.LAST, marker, run_copy / rundir.LAST)
    (run_copy / rundir.SUMMARY).unlink()
    before = _snapshot(run_copy)
    _fails(capsys, ["train", "--out", str(run_copy), "--resume", "--quiet"], "last.pt", "refused", "malicious")
    assert not marker.exists()
    assert _snapshot(run_copy) == before


def test_malicious_checkpoint_is_refused_by_init_from(run_copy, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    _malicious_checkpoint(run_copy / rundir.BEST, marker, run_copy / rundir.BEST)
    out = tmp_path / "fw"
    _fails(capsys, ["train", *TINY, "--method", "fw", "--init-from", str(run_copy), "--epochs", "1", "--out", str(out)],
           "best.pt", "refused")
    assert not marker.exists() and not out.exists()


def test_malicious_checkpoint_is_refused_by_detect(run_copy, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    _malicious_checkpoint(run_copy / rundir.BEST, marker, run_copy / rundir.BEST)
    _fails(capsys, ["detect", str(run_copy), "--quiet", "--device", "cpu"], "best.pt", "refused")
    assert not marker.exists()
    assert not (run_copy / rundir.LABEL_ERRORS).exists()


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage"])
def test_corrupt_last_checkpoint_on_resume(run_copy, capsys, kind):
    _corrupt(run_copy / rundir.LAST, kind)
    (run_copy / rundir.SUMMARY).unlink()
    before = _snapshot(run_copy)
    _fails(capsys, ["train", "--out", str(run_copy), "--resume", "--quiet"], str(run_copy / rundir.LAST),
           "empty" if kind == "empty" else "corrupt")
    assert _snapshot(run_copy) == before


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage"])
def test_corrupt_best_checkpoint_with_init_from(run_copy, tmp_path, capsys, kind):
    _corrupt(run_copy / rundir.BEST, kind)
    out = tmp_path / "dmi"
    _fails(capsys, ["train", *TINY, "--method", "dmi", "--init-from", str(run_copy), "--epochs", "1",
                    "--out", str(out)], str(run_copy / rundir.BEST))
    assert not out.exists()


@pytest.mark.parametrize("kind", ["truncated", "empty", "garbage"])
def test_corrupt_best_checkpoint_with_detect(run_copy, capsys, kind):
    _corrupt(run_copy / rundir.BEST, kind)
    _fails(capsys, ["detect", str(run_copy), "--quiet", "--device", "cpu"], str(run_copy / rundir.BEST))


def test_checkpoint_that_is_not_a_dict_or_lacks_keys(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(LimitlabError, match="holds a list"):
        rundir.load_checkpoint(tmp_path / "list.pt")
    torch.save({"epoch": 3}, tmp_path / "dict.pt")
    with pytest.raises(LimitlabError, match="lacks objective"):
        rundir.load_checkpoint(tmp_path / "dict.pt", keys=("epoch", "objective"))
    with pytest.raises(LimitlabError, match="does not exist"):
        rundir.load_checkpoint(tmp_path / "missing.pt")


def test_init_from_checkpoint_with_wrong_shapes_is_one_sentence(run_copy, tmp_path, capsys):
    ckpt = torch.load(run_copy / rundir.BEST, weights_only=True)
    ckpt["classifier"] = {k: v if k == "head.weight" else torch.zeros(3) for k, v in ckpt["classifier"].items()}
    torch.save(ckpt, run_copy / rundir.BEST)
    _fails(capsys, ["train", *TINY, "--method", "dmi", "--init-from", str(run_copy), "--epochs", "1",
                    "--out", str(tmp_path / "out")], "--init-from", "do not fit")


def test_noisy_labels_file_is_read_without_pickles(run_copy, capsys):
    np.save(run_copy / "x.npy", np.array([object()], dtype=object), allow_pickle=True)
    (run_copy / rundir.NOISY_LABELS).write_bytes((run_copy / "x.npy").read_bytes())
    _fails(capsys, ["detect", str(run_copy), "--quiet", "--device", "cpu"], "noisy_labels.npz", "corrupt")


# ------------------------------------------------------------------------------------------ --overwrite
def test_overwrite_replaces_a_run_with_detect_outputs_and_temp_files(run_copy, capsys):
    (run_copy / rundir.DETECTION).write_text("{}")
    (run_copy / ".metrics.jsonl.k2j3.tmp").write_text("half")
    (run_copy / "checkpoints" / ".last.pt.x81.tmp").write_bytes(b"half")
    assert rundir.foreign_entries(run_copy) == []
    assert main(["train", *TINY, "--method", "ce", "--epochs", "1", "--out", str(run_copy), "--overwrite"]) == 0
    assert not (run_copy / rundir.DETECTION).exists() and not (run_copy / ".metrics.jsonl.k2j3.tmp").exists()
    assert json.loads((run_copy / rundir.SUMMARY).read_text())["epochs_run"] == 1


@pytest.mark.parametrize("intruder", ["holiday.jpg", "checkpoints/mine.pt", "notes/"])
def test_overwrite_refuses_a_run_folder_with_other_files(run_copy, capsys, intruder):
    path = run_copy / intruder
    path.mkdir() if intruder.endswith("/") else path.write_bytes(b"mine")
    before = _snapshot(run_copy)
    _fails(capsys, ["train", *TINY, "--epochs", "1", "--out", str(run_copy), "--overwrite"],
           "not a limitlab run directory", intruder)
    assert _snapshot(run_copy) == before and path.exists()


def test_overwrite_refuses_a_folder_whose_config_is_not_limitlabs(tmp_path, capsys):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"learning_rate": 0.1}))
    (folder / "metrics.jsonl").write_text("{}\n")
    before = _snapshot(folder)
    _fails(capsys, ["train", *TINY, "--epochs", "1", "--out", str(folder), "--overwrite"],
           "not a limitlab run directory", "config.json")
    assert _snapshot(folder) == before


def test_overwrite_refuses_a_symlink(run_copy, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(run_copy, target_is_directory=True)
    before = _snapshot(run_copy)
    _fails(capsys, ["train", *TINY, "--epochs", "1", "--out", str(link), "--overwrite"], "symbolic link")
    assert link.is_symlink() and _snapshot(run_copy) == before


def test_overwrite_refuses_a_file(tmp_path, capsys):
    path = tmp_path / "results.txt"
    path.write_text("mine")
    _fails(capsys, ["train", *TINY, "--epochs", "1", "--out", str(path), "--overwrite"], "is a file")
    assert path.read_text() == "mine"


def test_symlink_inside_a_run_is_foreign(run_copy, tmp_path):
    (tmp_path / "elsewhere").write_text("x")
    (run_copy / "summary.json").unlink()
    (run_copy / "summary.json").symlink_to(tmp_path / "elsewhere")
    assert rundir.foreign_entries(run_copy) == ["summary.json"]


# ------------------------------------------------------------------------------------------ divergence
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_learning_rate_must_be_finite(tmp_path, capsys, value):
    out = tmp_path / "run"
    _fails(capsys, ["train", *TINY, "--epochs", "1", f"--lr={value}", "--out", str(out)], "--lr")
    assert not out.exists()


def test_other_float_fields_must_be_finite():
    with pytest.raises(LimitlabError, match="--beta must be a finite number"):
        Config(beta=math.inf).validate()


@pytest.mark.parametrize("lr, method, what, per_tensor_adam", [
    ("1e38", "ce", "the loss became nan", False),  # the fused Adam step runs, the loss is nan
    ("1e38", "ce", "overflowed", True),  # the per-tensor Adam step refuses a step size beyond float
    ("1e6", "limit-l", "a parameter reached", False)])
def test_divergence_in_the_first_epoch_leaves_nothing(tmp_path, capsys, monkeypatch, lr, method, what,
                                                       per_tensor_adam):
    if per_tensor_adam:
        train_module = importlib.import_module("limitlab.train")  # the optimizer of `limitlab train`

        monkeypatch.setattr(train_module, "make_optimizer", lambda objective, config, device: torch.optim.Adam(
            objective.parameters(), lr=config.lr, foreach=False))
    out = tmp_path / "new" / "run"
    err = _fails(capsys, ["train", *TINY, "--method", method, "--epochs", "2", "--lr", lr, "--out", str(out)],
                 "diverged", what, "epoch 1", "no epoch completed")
    assert "last.pt" not in err
    assert not (tmp_path / "new").exists()  # the folders it made are gone too
    # and an existing empty folder stays, empty
    out.mkdir(parents=True)
    _fails(capsys, ["train", *TINY, "--method", method, "--epochs", "2", "--lr", lr, "--out", str(out)], "diverged")
    assert out.is_dir() and not any(out.iterdir())


def test_divergence_after_the_first_epoch_points_to_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    import limitlab.loop as loop_module  # the epoch loop calls train_one_epoch

    real, calls = loop_module.train_one_epoch, []

    def second_epoch_diverges(*args, **kwargs):
        losses = real(*args, **kwargs)
        calls.append(1)
        return {**losses, "loss": math.nan} if len(calls) == 2 else losses

    monkeypatch.setattr(loop_module, "train_one_epoch", second_epoch_diverges)
    out = tmp_path / "run"
    _fails(capsys, ["train", *TINY, "--method", "ce", "--epochs", "3", "--out", str(out)],
           "diverged", "epoch 2", str(out / rundir.LAST))
    assert torch.load(out / rundir.LAST, weights_only=True)["epoch"] == 1  # kept: --resume can continue


def test_divergence_catches_exploding_and_nonfinite_parameters():
    model = torch.nn.Linear(3, 2)
    assert divergence(model, {"loss": 0.5}) is None
    for bad in (MAX_PARAMETER * 10, math.nan, math.inf):
        with torch.no_grad():
            model.weight[0, 0] = bad
        assert divergence(model, {"loss": 0.5}).startswith("a parameter reached")
    with torch.no_grad():
        model.weight.zero_()
    assert divergence(model, {"loss": math.nan}) == "the loss became nan"


# ----------------------------------------------------------------------------------- half-written runs
def test_undecodable_image_leaves_no_run_folder(tmp_path, capsys):
    from test_train_images import _image_tree

    _image_tree(tmp_path / "mine", per_class=3)
    bad = tmp_path / "mine" / "train" / "cat" / "1.png"
    good = bad.read_bytes()
    bad.write_bytes(b"not a png")
    args = ["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "mine"), "--model", "mlp",
            "--image-size", "8", "--workers", "0", "--epochs", "1", "--batch-size", "2", "--quiet",
            "--out", str(tmp_path / "run")]
    _fails(capsys, args, "1.png")
    assert not (tmp_path / "run").exists()
    bad.write_bytes(good)  # fixed: the same command now runs, with no "not empty" in the way
    assert main(args) == 0, capsys.readouterr().err


def test_failed_fresh_run_removes_only_what_it_wrote(tmp_path):
    run = tmp_path / "a" / "b"
    created = rundir.prepare_run_dir(run, resume=False, overwrite=False)
    assert created == tmp_path / "a"
    with pytest.raises(RuntimeError):
        with rundir.writing(run, fresh=True, created=created):
            rundir.write_json(run / rundir.CONFIG, {})
            rundir.save_torch(run / rundir.BEST, {})
            (run / "mine.txt").write_text("the user's")  # appeared meanwhile: never deleted
            raise RuntimeError("boom")
    assert sorted(p.name for p in run.iterdir()) == ["mine.txt"]


def test_interrupted_fresh_run_keeps_its_files_for_resume(tmp_path):
    run = tmp_path / "run"
    created = rundir.prepare_run_dir(run, resume=False, overwrite=False)
    with pytest.raises(KeyboardInterrupt):
        with rundir.writing(run, fresh=True, created=created):
            rundir.write_json(run / rundir.CONFIG, {})
            raise KeyboardInterrupt
    assert (run / rundir.CONFIG).exists() and not (run / rundir.LOCK).exists()


# --------------------------------------------------------------------------------------- metrics.jsonl
def _killed_after_epoch_1(out):
    class Stop(Exception):
        pass

    def stop(row):
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train(Config(dataset="digits", noise="uniform:0.3", train_size=200, batch_size=64, epochs=3, method="ce",
                     device="cpu"), out, progress=False, on_epoch_end=stop)


def test_torn_last_metrics_line_is_dropped_and_resume_rewrites_it(tmp_path, capsys):
    out = tmp_path / "sweep" / "run"
    _killed_after_epoch_1(out)
    with open(out / rundir.METRICS, "a") as f:
        f.write('{"epoch": 2, "train_lo')  # a kill in the middle of the append
    assert [r["epoch"] for r in rundir.read_metrics(out)] == [1]
    assert main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    lines = (out / rundir.METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_torn_metrics_line_in_the_middle_is_corruption(tmp_path, capsys):
    out = tmp_path / "run"
    _killed_after_epoch_1(out)
    good = (out / rundir.METRICS).read_text()
    (out / rundir.METRICS).write_text('{"epoch": 1, "tr\n' + good)
    with pytest.raises(LimitlabError, match="line 1"):
        rundir.read_metrics(out)
    _fails(capsys, ["train", "--out", str(out), "--resume", "--quiet"], "metrics.jsonl", "corrupt")


def test_metrics_missing_a_checkpointed_epoch_is_refused_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    _killed_after_epoch_1(out)
    (out / rundir.METRICS).write_text("")
    _fails(capsys, ["train", "--out", str(out), "--resume", "--quiet"], "metrics.jsonl", "epoch 1")


# ------------------------------------------------------------------------------------------ config types
@pytest.mark.parametrize("field, value, expected", [
    ("epochs", "3", "an integer"),
    ("lr", [0.1], "a number"),
    ("epochs", True, "an integer"),
    ("compile", 1, "true or false"),
    ("dataset", None, "a string"),
    ("train_size", 2.5, "an integer or null"),
    ("noise", {"p": 1}, "a string"),
])
def test_config_field_types_are_checked(field, value, expected):
    with pytest.raises(LimitlabError, match=f"'{field}' must be {expected}"):
        Config.from_dict({field: value})


def test_config_accepts_integers_for_float_fields_and_null_where_optional():
    c = Config.from_dict({"lr": 1, "patience": None, "train_size": 5})
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.patience is None and c.train_size == 5


def test_config_file_with_a_wrong_type_is_one_sentence(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"dataset": "digits", "epochs": "3"}))
    out = tmp_path / "run"
    _fails(capsys, ["train", "--config", str(tmp_path / "c.json"), "--quiet", "--out", str(out)], "epochs", "integer")
    assert not out.exists()


@pytest.mark.parametrize("content", [b'{"lr": [1]}', b"\xff\xfe garbage", b"[1, 2]"])
def test_resume_with_a_broken_config_json_is_one_sentence(run_copy, capsys, content):
    (run_copy / rundir.CONFIG).write_bytes(content)
    (run_copy / rundir.SUMMARY).unlink()
    _fails(capsys, ["train", "--out", str(run_copy), "--resume", "--quiet"], "config.json")


@pytest.mark.parametrize("value", ["0", "1", "-5"])
def test_train_size_below_two_is_refused(tmp_path, capsys, value):
    out = tmp_path / "run"
    _fails(capsys, ["train", *TINY, "--epochs", "1", "--train-size", value, "--out", str(out)], "--train-size")
    assert not out.exists()


def test_train_size_all_means_every_example():
    args = build_parser().parse_args(["train", "--train-size", "all", "--out", "x"])
    assert args.train_size is None


# ---------------------------------------------------------------------------------------------- detect
def test_detect_out_pointing_at_a_file(run_copy, tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    _fails(capsys, ["detect", str(run_copy), "--quiet", "--out", str(tmp_path / "file")], "not a folder")
    _fails(capsys, ["detect", str(run_copy), "--quiet", "--out", str(tmp_path / "file" / "sub")], "is a file")
    assert (tmp_path / "file").read_text() == "mine"


def test_detect_data_dir_precedence(tmp_path, monkeypatch):
    from limitlab.analysis.detect import _data_dir

    saved = tmp_path / "saved"
    saved.mkdir()
    assert _data_dir(str(saved), tmp_path / "given") == str(tmp_path / "given")  # --data-dir first
    assert _data_dir(str(saved), None) == str(saved)  # then the run's own, while it exists
    assert _data_dir(str(tmp_path / "moved"), None) is None  # else $LIMITLAB_DATA / the cache
    assert _data_dir(None, None) is None


def test_detect_finds_moved_data_with_data_dir_or_limitlab_data(tmp_path, monkeypatch, capsys, data_root):
    data = tmp_path / "data"
    (data).mkdir()
    (data / "mnist").symlink_to(data_root / "mnist", target_is_directory=True)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(data), "--model", "mlp", "--train-size", "200",
                 "--val-fraction", "0.01", "--epochs", "1", "--method", "ce", "--quiet", "--device", "cpu",
                 "--out", str(run)]) == 0
    data.rename(tmp_path / "moved")
    monkeypatch.setenv("LIMITLAB_DATA", str(tmp_path / "nowhere"))
    from limitlab.data import download

    (tmp_path / "no-mirror").mkdir()  # no download either, with or without network
    monkeypatch.setitem(download.BASE_URLS, "mnist", (tmp_path / "no-mirror").as_uri() + "/")
    _fails(capsys, ["detect", str(run), "--quiet", "--device", "cpu"], "--data-dir")
    assert main(["detect", str(run), "--quiet", "--device", "cpu", "--data-dir", str(tmp_path / "moved")]) == 0
    monkeypatch.setenv("LIMITLAB_DATA", str(tmp_path / "moved"))
    assert main(["detect", str(run), "--quiet", "--device", "cpu", "--out", str(tmp_path / "det")]) == 0
    assert (tmp_path / "det" / rundir.DETECTION).exists()


# ---------------------------------------------------------------------------------------------- small
def test_unknown_preset_points_to_the_presets_command():
    from limitlab.experiments.presets import load_grid

    with pytest.raises(LimitlabError, match="`limitlab presets`"):
        load_grid("zzzz-not-a-preset")


def test_cifar_pickle_of_python3_protocol_2_is_accepted_and_codecs_stays_narrow():
    import _codecs

    from limitlab.data.cifar import _unpickle

    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [1, 2], b"name": b"\xff\x00", b"": b""}
    raw = pickle.dumps(batch, protocol=2)
    assert b"_codecs" in raw  # Python 3 writes bytes through _codecs.encode under protocol 2
    got = _unpickle("batch", raw)
    assert got.keys() == batch.keys() and np.array_equal(got[b"data"], batch[b"data"])
    assert got[b"name"] == b"\xff\x00" and got[b""] == b""

    class Rot13:
        def __reduce__(self):
            return _codecs.encode, ("abc", "rot13")

    class Huge:
        def __reduce__(self):
            return bytes, (10 ** 12,)

    for obj in (Rot13(), Huge()):
        with pytest.raises(LimitlabError, match="refused"):
            _unpickle("batch", pickle.dumps({b"x": obj}, protocol=2))


def test_writes_that_fail_are_one_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LimitlabError, match="cannot write"):
        rundir.atomic_write_bytes(tmp_path / "file" / "out.json", b"{}")
    assert os.path.isfile(tmp_path / "file")


def test_config_load_of_deeply_nested_json(tmp_path):
    (tmp_path / "c.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(LimitlabError, match="c.json"):
        Config.load(tmp_path / "c.json")



def test_overwrite_recognises_a_method_s_extra_files(run_copy, tmp_path, capsys):
    out = tmp_path / "fw"
    args = ["train", *TINY, "--method", "fw", "--init-from", str(run_copy), "--epochs", "1", "--out", str(out)]
    assert main(args) == 0
    assert (out / "fw_transition.csv").exists() and rundir.foreign_entries(out) == []
    assert main([*args, "--overwrite"]) == 0, capsys.readouterr().err
