"""--dataset table:FILE: CSV, parquet and npz tables through the paper protocol, detect, sweep and report."""

import csv
import json

import numpy as np
import pytest
import torch

from limitlab.analysis.detect import detect
from limitlab.analysis.report import write_report
from limitlab.cli import main
from limitlab.config import Config
from limitlab.data.run import prepare_data
from limitlab.data.table import TEST_FRACTION, read_table
from limitlab.errors import DataError
from limitlab.experiments.sweep import run_sweep

pd = pytest.importorskip("pandas")

N = 240


def frame(seed=0):
    """Three classes in two numeric features plus a categorical column that carries some signal."""
    rng = np.random.default_rng(seed)
    species = rng.choice(["setosa", "versicolor", "virginica"], size=N)
    k = np.searchsorted(["setosa", "versicolor", "virginica"], species)
    return pd.DataFrame({"length": k * 3.0 + rng.normal(size=N), "width": 100 + 20 * k + rng.normal(size=N) * 5,
                         "colour": np.where(rng.random(N) < 0.7, np.array(["red", "green", "blue"])[k], "red"),
                         "species": species})


@pytest.fixture()
def table_csv(tmp_path):
    path = tmp_path / "flowers.csv"
    frame().to_csv(path, index=False)
    return path


ARGS = ["--epochs", "2", "--batch-size", "32", "--quiet"]


def _train(capsys, *args):
    code = main(["train", *args, *ARGS])
    return code, capsys.readouterr().err.strip()


def test_csv_through_the_cli_and_detect(table_csv, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _train(capsys, "--dataset", f"table:{table_csv}", "--label-column", "species",
                       "--noise", "uniform:0.2", "--method", "limit-l", "--out", str(out))
    assert code == 0, err
    config = Config.load(out / "config.json")
    assert (config.dataset, config.label_column) == (f"table:{table_csv}", "species")
    record = np.load(out / "noisy_labels.npz")
    assert list(record["feature_names"]) == ["length", "width", "colour_blue", "colour_green", "colour_red"]
    assert list(record["class_names"]) == ["setosa", "versicolor", "virginica"]
    saved = json.loads((out / "table.json").read_text())
    assert [(c["column"], c["width"]) for c in saved["encoding"]["columns"]] == [("length", 1), ("width", 1),
                                                                                 ("colour", 3)]
    assert saved["source"]["path"] == str(table_csv.resolve())
    n_train = N - round(TEST_FRACTION * N)
    assert len(record["train_index"]) + len(record["val_index"]) == n_train
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["memorized_fraction"] is not None and r["test_accuracy"] is not None for r in rows)

    summary = detect(out, progress=False, split="train")
    assert summary["score"] == "limit_gradient_mismatch" and summary["suspects_png"] is None
    assert "rows of features" in summary["note"]
    with open(out / "label_errors.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"is_label_issue", "label_quality", "given_label", "predicted_label"} <= set(rows[0])
    # each suspect points at its row of the user's file, with the labels as the file writes them
    original = pd.read_csv(table_csv)
    names = ["setosa", "versicolor", "virginica"]
    noisy_by_row = dict(zip(record["train_file_row"].tolist(), record["train_noisy"].tolist()))
    for r in rows:
        row = int(r["file_row"])
        assert names[int(r["given_label"])] == r["given_class"] and names[int(r["predicted_label"])] == r["predicted_class"]
        assert noisy_by_row[row] == int(r["given_label"])
        true_name = names[int(record["train_true"][list(record["train_file_row"]).index(row)])]
        assert original.loc[row, "species"] == true_name


def test_standardised_with_the_training_split_only(table_csv):
    config = Config(dataset=f"table:{table_csv}", label_column="species", seed=4)
    data = prepare_data(config, torch.device("cpu"))
    x = data.train.images.numpy().astype(np.float64)
    std = x.std(0)
    std[std == 0] = 1
    np.testing.assert_allclose(data.scale.numpy(), 1 / std, rtol=1e-5)
    np.testing.assert_allclose(data.shift.numpy(), x.mean(0) / std, rtol=1e-5, atol=1e-6)
    inputs = data.to_input(data.train.images)
    np.testing.assert_allclose(inputs.mean(0).numpy(), 0, atol=1e-4)
    assert data.input_shape == (5,) and inputs.dim() == 2
    assert data.train.images.dtype == torch.float32 and not torch.equal(inputs, data.train.images)


def test_held_out_test_split_is_fixed_and_independent_of_the_seed(table_csv):
    a = prepare_data(Config(dataset=f"table:{table_csv}", label_column="species", seed=0), torch.device("cpu"))
    b = prepare_data(Config(dataset=f"table:{table_csv}", label_column="species", seed=1), torch.device("cpu"))
    assert len(a.test) == round(TEST_FRACTION * N) and torch.equal(a.test.images, b.test.images)
    assert not np.array_equal(a.record["val_index"], b.record["val_index"])  # the protocol's split follows the seed


def test_split_column_and_parquet(tmp_path):
    df = frame()
    df["split"] = np.where(np.arange(N) < 200, "train", "test")
    df.to_parquet(tmp_path / "t.parquet")
    table = read_table(tmp_path / "t.parquet", "species")
    assert table.test_from_file and len(table.test_labels) == 40 and len(table.train_labels) == 200
    assert list(table.train_rows) == list(range(200))


def test_npz_with_its_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    x = (y[:, None] + rng.normal(size=(300, 16)) * 0.3).astype(np.float32)
    np.savez(tmp_path / "emb.npz", X=x[:250], y=y[:250], X_test=x[250:], y_test=y[250:])
    data = prepare_data(Config(dataset=f"table:{tmp_path / 'emb.npz'}", noise="pairflip:0.3"), torch.device("cpu"))
    assert len(data.test) == 50 and data.num_classes == 4 and data.input_shape == (16,)
    assert 0.15 < float(data.record["train_rate"]) < 0.45


def test_a_relative_file_is_also_looked_for_in_the_data_root(table_csv):
    config = Config(dataset=f"table:{table_csv.name}", label_column="species", data_dir=str(table_csv.parent))
    assert prepare_data(config, torch.device("cpu")).num_classes == 3


def test_missing_pyarrow_is_one_sentence(tmp_path, monkeypatch):
    frame().to_parquet(tmp_path / "t.parquet")

    def no_engine(*a, **k):
        raise ImportError("Unable to find a usable engine")
    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(Exception, match=r"reading \.parquet files needs pyarrow: pip install 'limitlab\[tables\]'"):
        read_table(tmp_path / "t.parquet", "species")


def test_sweep_and_report_over_a_table(table_csv, tmp_path):
    grid = {"description": "table", "base": {"dataset": f"table:{table_csv}", "label_column": "species",
                                             "noise": "uniform:0.2", "epochs": 1, "batch_size": 64},
            "axes": {"method": ["ce", "limit-l"]}, "seeds": [0]}
    (tmp_path / "g.json").write_text(json.dumps(grid))
    statuses = run_sweep(tmp_path / "g.json", tmp_path / "sweep", jobs=1, progress=False)
    assert all(s.ok for s in statuses) and len(statuses) == 2
    assert all("table-" in s.name and "flowers" in s.name for s in statuses)
    written = write_report(tmp_path / "sweep")
    text = written["report.md"].read_text()
    assert "limit-l" in text.lower() and "ce" in text.lower()


# ------------------------------------------------------------------------------- bad input: one sentence each
def _refused(capsys, tmp_path, dataset, *extra):
    out = tmp_path / "never"
    code, err = _train(capsys, "--dataset", dataset, *extra, "--out", str(out))
    assert code == 2 and err.startswith("limitlab: error: ") and "\n" not in err, err
    assert not out.exists()
    return err[len("limitlab: error: "):]


def test_missing_cells_are_imputed_not_refused(tmp_path):
    df = frame()
    df.loc[[3, 4, 9], "width"] = np.nan
    df.loc[7, "colour"] = None
    df.to_csv(tmp_path / "m.csv", index=False)
    data = prepare_data(Config(dataset=f"table:{tmp_path / 'm.csv'}", label_column="species"), torch.device("cpu"))
    names = list(data.record["feature_names"])
    assert "width (missing)" in names and "colour_nan" in names and "length (missing)" not in names
    assert torch.isfinite(data.train.images).all() and torch.isfinite(data.test.images).all()


def test_an_infinite_value_names_its_column(tmp_path, capsys):
    df = frame()
    df.loc[8, "length"] = np.inf
    df.to_csv(tmp_path / "m.csv", index=False)
    err = _refused(capsys, tmp_path, f"table:{tmp_path / 'm.csv'}", "--label-column", "species")
    assert err.startswith("column 'length' of ") and "beyond float32's range" in err


def test_x_and_y_of_different_lengths(tmp_path, capsys):
    np.savez(tmp_path / "a.npz", X=np.zeros((10, 3)), y=np.arange(9) % 2)
    err = _refused(capsys, tmp_path, f"table:{tmp_path / 'a.npz'}")
    assert "have different lengths (10 rows of features, 9 labels)" in err


def test_a_single_class(tmp_path, capsys):
    df = frame()
    df["species"] = "setosa"
    df.to_csv(tmp_path / "one.csv", index=False)
    err = _refused(capsys, tmp_path, f"table:{tmp_path / 'one.csv'}", "--label-column", "species")
    assert "has only one class ('setosa'); a classifier needs examples of at least two classes" in err


def test_a_label_column_that_does_not_exist(table_csv, tmp_path, capsys):
    err = _refused(capsys, tmp_path, f"table:{table_csv}", "--label-column", "kind")
    assert err.endswith("has no column 'kind'; pass --label-column with one of: length, width, colour, species")


def test_an_empty_file(tmp_path, capsys):
    (tmp_path / "e.csv").write_text("")
    assert "is empty; it needs a header line" in _refused(capsys, tmp_path, f"table:{tmp_path / 'e.csv'}")
    (tmp_path / "h.csv").write_text("a,b,label\n")
    assert "has a header but no rows" in _refused(capsys, tmp_path, f"table:{tmp_path / 'h.csv'}")


def test_one_dimensional_x(tmp_path, capsys):
    np.savez(tmp_path / "flat.npz", X=np.zeros(10), y=np.arange(10) % 2)
    err = _refused(capsys, tmp_path, f"table:{tmp_path / 'flat.npz'}")
    assert "is 1-D (shape (10,)) but must be 2-D, one row per example" in err


def test_sparse_input_is_refused_with_a_reason(tmp_path, capsys):
    sparse = pytest.importorskip("scipy.sparse")
    sparse.save_npz(tmp_path / "s.npz", sparse.csr_matrix(np.eye(5)))
    err = _refused(capsys, tmp_path, f"table:{tmp_path / 's.npz'}")
    assert "holds a scipy sparse matrix, which is not supported (the networks train on dense tensors)" in err


def test_test_labels_the_training_set_never_had(tmp_path, capsys):
    np.savez(tmp_path / "t.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2, X_test=np.zeros((3, 2)),
             y_test=np.array([0, 1, 5]))
    err = _refused(capsys, tmp_path, f"table:{tmp_path / 't.npz'}")
    assert "t.npz has label 5 that the training set never has" in err


def test_label_column_needs_a_table_dataset(tmp_path, capsys):
    err = _refused(capsys, tmp_path, "digits", "--label-column", "y")
    assert err == "--label-column is for the table:FILE dataset, not digits; drop it"


def test_the_python_api_raises_value_error_with_the_same_sentence(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="is empty; it needs a header line"):
        read_table(tmp_path / "e.csv")
    assert issubclass(DataError, ValueError)
