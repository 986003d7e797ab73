"""Property tests of the table path: generated tables (random column kinds, missing cells, unicode
headers) and random bytes either train or are refused with one sentence; the command line and the
estimator turn the same table into the same features."""

import string

import numpy as np
import pytest
import torch

from limitlab import LimitClassifier
from limitlab.cli import main
from limitlab.config import Config
from limitlab.data.run import prepare_data

pd = pytest.importorskip("pandas")
pytest.importorskip("skrub")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = dict(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
KINDS = ("int", "float", "category", "text", "date", "bool", "typo", "empty")
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=6)


def column(kind: str, n: int, rng: np.random.Generator, missing: float):
    if kind == "int":
        values = rng.integers(-5, 100, n).astype(object)
    elif kind == "float":
        values = rng.normal(size=n).round(3).astype(object)
    elif kind == "category":
        values = rng.choice(["α", "b", "Ç c", "d,e"], n).astype(object)
    elif kind == "text":
        values = np.array([" ".join(rng.choice(list("xyzwé"), 3)) + f" {i}" for i in range(n)], dtype=object)
    elif kind == "date":
        values = pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d").to_numpy(dtype=object)
    elif kind == "bool":
        values = rng.choice([True, False], n).astype(object)
    elif kind == "typo":
        values = rng.normal(size=n).round(2).astype(object)
        values[0] = "n/a?"
    else:
        values = np.full(n, None, dtype=object)
    values[rng.random(n) < missing] = None
    return values


@st.composite
def tables(draw):
    n = draw(st.integers(12, 40))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5))
    names = draw(st.lists(NAMES.filter(lambda s: s.strip().lower() not in ("label", "split")), min_size=len(kinds),
                          max_size=len(kinds), unique_by=lambda s: s.strip().lower()))
    seed = draw(st.integers(0, 2 ** 16))
    missing = draw(st.sampled_from([0.0, 0.1, 0.4]))
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: column(kind, n, rng, missing) for name, kind in zip(names, kinds)})
    frame["label"] = np.array(["yes", "no"])[np.arange(n) % 2]
    return frame


def outcome(capsys, tmp_path, path) -> str:
    out = tmp_path / "run"
    code = main(["train", "--dataset", f"table:{path}", "--epochs", "1", "--batch-size", "8", "--quiet",
                 "--overwrite", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    if code == 0:
        return "trained"
    assert code == 2 and err.startswith("limitlab: error: ") and "\n" not in err, err
    return "refused"


@settings(**SETTINGS)
@given(frame=tables())
def test_generated_tables_train_or_are_refused_in_one_sentence(frame, tmp_path_factory, capsys):
    tmp_path = tmp_path_factory.mktemp("gen")
    frame.to_csv(tmp_path / "t.csv", index=False)
    outcome(capsys, tmp_path, tmp_path / "t.csv")


@settings(**SETTINGS)
@given(data=st.binary(min_size=1, max_size=400), suffix=st.sampled_from([".csv", ".parquet", ".npz"]))
def test_random_bytes_train_or_are_refused_in_one_sentence(data, suffix, tmp_path_factory, capsys):
    tmp_path = tmp_path_factory.mktemp("bytes")
    (tmp_path / f"b{suffix}").write_bytes(data)
    outcome(capsys, tmp_path, tmp_path / f"b{suffix}")


@settings(**{**SETTINGS, "max_examples": 4})
@given(frame=tables())
def test_the_cli_and_the_estimator_make_the_same_features(frame, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("same")
    frame.columns = [c if c.strip() == c and c[:1] not in string.digits else f"c_{c.strip()}" for c in frame.columns]
    frame.to_csv(tmp_path / "t.csv", index=False)
    try:
        data = prepare_data(Config(dataset=f"table:{tmp_path / 't.csv'}"), torch.device("cpu"))
    except ValueError:  # refused (one sentence: tested above); nothing to compare
        return
    read_back = pd.read_csv(tmp_path / "t.csv")  # the cells as the file holds them
    rows = data.record["train_file_row"]
    x = read_back.drop(columns="label").iloc[rows].reset_index(drop=True)
    clf = LimitClassifier(epochs=1, batch_size=8, random_state=0).fit(x, read_back["label"].iloc[rows].to_numpy())
    np.testing.assert_array_equal(clf.table_encoder_.transform(x), data.train.images.numpy())
    # the same use and width per column; the notes may differ, since the CLI also counts the non-numeric
    # cells of the file's other rows (validation and test), which the estimator here is not given
    uses = lambda summary: [(e["column"], e["used_as"], e["width"]) for e in summary["columns"]]  # noqa: E731
    assert uses(clf.encoding_summary_) == uses(data.table["encoding"])
