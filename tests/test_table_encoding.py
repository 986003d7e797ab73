"""The table-to-features step (limitlab.data.encoding): what each kind of column becomes, fitted on
training rows only, with a width that does not grow with the rows."""

import numpy as np
import pytest

from limitlab.data.encoding import TableEncoder, summary_text
from limitlab.errors import DataError

pd = pytest.importorskip("pandas")
pytest.importorskip("skrub")


def messy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"C{i:06d}" for i in range(n)],
        "age": rng.integers(18, 90, n).astype(float),
        "city": rng.choice(["Paris", "Lyon", "Nice", None], n),
        "signup": pd.Series(pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d")),
        "comment": [f"delivery late {i} box" if i % 3 else None for i in range(n)],
        "score": [str(v) for v in rng.normal(size=n).round(2)],
    })


def used(encoder, column):
    return next(e for e in encoder.summary if e["column"] == column)


def test_each_kind_of_column():
    df = messy()
    df.loc[[5, 17], "score"] = ["n/a?", "??"]
    df.loc[[1, 2, 3], "age"] = np.nan
    enc = TableEncoder()
    x = enc.fit_transform(df)
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.shape == (300, len(enc.feature_names))
    assert used(enc, "customer_id") == {"column": "customer_id", "used_as": "ID (a unique value per row): not a feature",
                                        "width": 0}
    assert used(enc, "age")["width"] == 2 and "age (missing)" in enc.feature_names
    assert used(enc, "city")["width"] == 4 and "city_nan" in enc.feature_names  # missing: its own category
    assert used(enc, "signup")["used_as"].startswith("date") and "signup_year" in enc.feature_names
    assert used(enc, "comment")["width"] == 30
    score = used(enc, "score")
    assert score["used_as"] == "number as it is" and score["note"].startswith("2 non-numeric cells read as missing "
                                                                              "('n/a?', '??')")
    assert "customer_id" in summary_text(enc.record())


def test_missing_numbers_get_the_training_mean_and_an_indicator():
    df = messy(100)
    df.loc[[0, 1], "age"] = np.nan
    enc = TableEncoder()
    x = enc.fit_transform(df)
    col = enc.feature_names.index("age")
    ind = enc.feature_names.index("age (missing)")
    mean = df["age"].iloc[2:].mean()  # independent: the mean of the present cells
    np.testing.assert_allclose(x[:2, col], mean, rtol=1e-6)
    np.testing.assert_array_equal(x[:, ind], (np.arange(100) < 2).astype(np.float32))
    other = messy(10, seed=1)
    other.loc[3, "age"] = np.nan
    y = enc.transform(other)
    assert y[3, col] == pytest.approx(mean, rel=1e-6) and y[3, ind] == 1 and y[4, ind] == 0


def test_width_does_not_grow_with_rows():
    widths = {n: TableEncoder().fit_transform(messy(n)).shape[1] for n in (200, 2000)}
    assert widths[200] == widths[2000]


def test_fitted_on_training_rows_only():
    df = messy(200)
    enc = TableEncoder()
    enc.fit_transform(df.iloc[:100])
    later = df.iloc[100:].copy()
    later["city"] = "Marseille"  # a category the training rows never had: all zeros, not a new column
    x = enc.transform(later)
    city = [i for i, n in enumerate(enc.feature_names) if n.startswith("city_")]
    assert x.shape[1] == len(enc.feature_names) and not x[:, city].any()


def test_an_integer_id_column_by_name_and_by_flag():
    df = messy(50)
    df["row_id"] = np.arange(50) * 7
    df["count"] = np.arange(50)  # unique integers, but not named as an ID: a feature
    enc = TableEncoder(id_column="age")
    enc.fit_transform(df)
    assert used(enc, "row_id")["width"] == 0 and used(enc, "count")["width"] == 1
    assert used(enc, "age")["used_as"].startswith("ID (--id-column)")


def test_a_nested_column_is_dropped_with_a_reason():
    df = messy(30)
    df["tags"] = [[1, 2]] * 30
    enc = TableEncoder()
    enc.fit_transform(df)
    assert used(enc, "tags")["used_as"].startswith("dropped: nested values (list)")


def test_parquet_timestamps_and_structs(tmp_path):
    pytest.importorskip("pyarrow")
    from limitlab.data.table import read_table
    n = 40
    df = pd.DataFrame({"when": pd.date_range("2021-03-01", periods=n, freq="h", tz="UTC"), "x": np.arange(n) * 1.0,
                       "info": [{"a": i, "b": "z"} for i in range(n)], "label": np.arange(n) % 2})
    df.to_parquet(tmp_path / "t.parquet")
    data = read_table(tmp_path / "t.parquet")
    enc = TableEncoder()
    enc.fit_transform(data.frame)
    assert used(enc, "when")["used_as"].startswith("date") and used(enc, "info")["used_as"].startswith(
        "dropped: nested values (struct)")


def test_beyond_float32_names_the_column():
    df = messy(20)
    df.loc[3, "age"] = 1e300
    with pytest.raises(DataError, match=r"^column 'age' of the table has 1 values beyond float32's range"):
        TableEncoder().fit_transform(df)


def test_an_unknown_id_column_is_one_sentence():
    with pytest.raises(DataError, match=r"^--id-column 'nope' is not a column of the table"):
        TableEncoder(id_column="nope").fit_transform(messy(20))
