"""Bad table inputs, one sentence each (CLI and estimator alike), .npz probes, --id-column in
label_errors.csv, and --resume of a table run from another working folder."""

import csv
import json
import shutil
import zipfile

import numpy as np
import pytest

from limitlab import LimitClassifier
from limitlab.analysis.detect import detect
from limitlab.cli import main

pd = pytest.importorskip("pandas")
pytest.importorskip("skrub")

ARGS = ["--epochs", "1", "--batch-size", "32", "--quiet"]


def table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    k = np.arange(n) % 3
    return pd.DataFrame({"key": [f"r{i:04d}" for i in range(n)], "x": k + rng.normal(size=n) * 0.3,
                         "colour": np.array(["red", "green", "blue"])[k], "label": np.array(["a", "b", "c"])[k]})


def refused(capsys, tmp_path, dataset, *extra):
    out = tmp_path / "never"
    code = main(["train", "--dataset", dataset, *extra, *ARGS, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("limitlab: error: ") and "\n" not in err, err
    assert not out.exists()
    return err[len("limitlab: error: "):]


def write(tmp_path, df, name="t.csv"):
    df.to_csv(tmp_path / name, index=False)
    return f"table:{tmp_path / name}"


# ------------------------------------------------------------------------------- labels and splits
def test_a_duplicated_label_header(tmp_path, capsys):
    (tmp_path / "d.csv").write_text("x,label,label\n" + "".join(f"{i},{i % 2},{i % 2}\n" for i in range(20)))
    err = refused(capsys, tmp_path, f"table:{tmp_path / 'd.csv'}")
    assert "has 2 columns named 'label'" in err and "leak the labels" in err


def test_a_continuous_label_cli_and_estimator(tmp_path, capsys):
    df = table()
    df["label"] = np.linspace(0, 1, len(df))
    err = refused(capsys, tmp_path, write(tmp_path, df))
    assert err.startswith("Unknown label type: continuous numbers in label column 'label'")
    with pytest.raises(ValueError, match=r"^Unknown label type: continuous numbers in y \(e\.g\. 0\.0169"):
        LimitClassifier(epochs=1).fit(df[["x", "colour"]], df["label"].to_numpy())


def test_nan_labels_in_a_csv(tmp_path, capsys):
    df = table()
    df.loc[[4, 7], "label"] = None
    err = refused(capsys, tmp_path, write(tmp_path, df))
    assert err.startswith("label column 'label' of ") and "has 2 empty cells (rows 6, 9 of the file)" in err


def test_nan_labels_in_an_npz(tmp_path, capsys):
    y = (np.arange(20) % 2).astype(float)
    y[3] = np.nan
    np.savez(tmp_path / "n.npz", X=np.zeros((20, 2)), y=y)
    err = refused(capsys, tmp_path, f"table:{tmp_path / 'n.npz'}")
    assert "has 1 missing labels (NaN or empty" in err


def test_test_labels_never_seen_with_a_split_column(tmp_path, capsys):
    df = table()
    df["split"] = np.where(np.arange(len(df)) < 50, "train", "test")
    df.loc[55, "label"] = "zebra"
    err = refused(capsys, tmp_path, write(tmp_path, df))
    assert "has label 'zebra' that the training set never has" in err


def test_test_labels_never_seen_without_a_split_column(tmp_path, capsys):
    df = table(40)
    test_rows = np.sort(np.random.default_rng(0).permutation(40)[:8])  # the fixed held-out draw (seed 0)
    df.loc[test_rows[0], "label"] = "zebra"
    err = refused(capsys, tmp_path, write(tmp_path, df))
    assert "the test rows of" in err and "has label 'zebra' that the training set never has" in err


def test_a_table_too_small_for_the_splits(tmp_path, capsys):
    err = refused(capsys, tmp_path, write(tmp_path, table(4)))
    assert "has only 4 rows, too few for a held-out test split (20%)" in err
    df = table(9)
    df["split"] = ["train"] * 6 + ["test"] * 3
    err = refused(capsys, tmp_path, write(tmp_path, df), "--val-fraction", "0.05")
    assert "leaves 6 training and 0 validation rows" in err


def test_the_id_column_must_exist(tmp_path, capsys):
    err = refused(capsys, tmp_path, write(tmp_path, table()), "--id-column", "nope")
    assert err.startswith("--id-column 'nope' is not a feature column of")


# ------------------------------------------------------------------------------- .npz probes
def test_npz_zero_d_y(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", X=np.zeros((10, 2)), y=np.array(3))
    assert "array y in" in refused(capsys, tmp_path, f"table:{tmp_path / 'a.npz'}")


def test_npz_header_claiming_a_trillion_rows(tmp_path, capsys):
    path = tmp_path / "big.npz"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12, 3)}
    with zipfile.ZipFile(path, "w") as z:
        for name, shape in (("X", (10 ** 12, 3)), ("y", (10 ** 12,))):
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array_header_1_0(f, {**header, "shape": shape})
    err = refused(capsys, tmp_path, f"table:{path}")
    assert "claims shape (1000000000000, 3)" in err and "more than half of this machine's memory" in err


def test_npz_that_is_not_a_zip(tmp_path, capsys):
    (tmp_path / "n.npz").write_bytes(b"just some text, not an archive\n" * 4)
    err = refused(capsys, tmp_path, f"table:{tmp_path / 'n.npz'}")
    assert "is not an .npz archive (not a zip file)" in err and "object" not in err


def test_npz_with_object_arrays(tmp_path, capsys):
    np.savez(tmp_path / "o.npz", X=np.zeros((10, 2)), y=np.array([{"a": 1}] * 10, dtype=object))
    assert "holds Python objects, which are not read (no pickles)" in refused(capsys, tmp_path,
                                                                              f"table:{tmp_path / 'o.npz'}")


def test_npz_without_feature_columns(tmp_path, capsys):
    np.savez(tmp_path / "z.npz", X=np.zeros((10, 0)), y=np.arange(10) % 2)
    assert "no features in its rows" in refused(capsys, tmp_path, f"table:{tmp_path / 'z.npz'}")


# ------------------------------------------------------------------------------- runs
def test_id_column_keys_label_errors_and_resume_from_another_folder(tmp_path, capsys, monkeypatch):
    start, elsewhere, moved = tmp_path / "start", tmp_path / "elsewhere", tmp_path / "moved"
    for d in (start, elsewhere, moved):
        d.mkdir()
    table(120).to_csv(start / "shop.csv", index=False)
    monkeypatch.chdir(start)
    assert main(["train", "--dataset", "table:shop.csv", "--id-column", "key", "--noise", "uniform:0.2",
                 "--epochs", "1", "--batch-size", "32", "--out", "../run"]) == 0
    err = capsys.readouterr().err
    assert "table encoding: 3 columns" in err and "ID (--id-column)" in err  # printed once by train
    run = tmp_path / "run"
    saved = json.loads((run / "table.json").read_text())
    assert saved["source"]["path"] == str(start / "shop.csv") and saved["id_column"] == "key"

    monkeypatch.chdir(elsewhere)  # the relative path no longer resolves: the recorded one is used
    assert main(["train", "--out", str(run), "--resume", "--epochs", "1", "--quiet"]) == 0
    capsys.readouterr()
    detect(run, progress=False)
    with open(run / "label_errors.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(r["key"] == f"r{int(r['file_row']):04d}" for r in rows)

    shutil.move(start / "shop.csv", moved / "shop.csv")
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 2
    assert "cannot find the run's table 'shop.csv'" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--data-dir", str(moved)]) == 0
    capsys.readouterr()
    with open(moved / "shop.csv", "a") as f:
        f.write("r9999,1.0,red,a\n")
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--data-dir", str(moved)]) == 2
    assert "is not the table this run was trained on" in capsys.readouterr().err


def test_a_dataframe_with_a_text_column_trains(tmp_path):
    df = table(90)
    df["note"] = [f"free text number {i}" for i in range(90)]
    clf = LimitClassifier(epochs=1, random_state=0).fit(df.drop(columns="label"), df["label"])
    columns = {e["column"]: e for e in clf.encoding_summary_["columns"]}
    assert columns["key"]["width"] == 0 and columns["note"]["width"] == 30 and columns["colour"]["width"] == 3
    assert clf.predict(df.drop(columns="label")).shape == (90,)
