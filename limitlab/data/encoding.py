"""The table-to-features step shared by ``--dataset table:FILE`` and :class:`limitlab.LimitClassifier`
given a pandas DataFrame (docs/your-data.md): each column of a table becomes a fixed number of
float32 features, whatever the number of rows.

Built on skrub's ``TableVectorizer`` (numbers as they are, dates as numeric parts, text with at most
40 distinct values one-hot, other text as a 30-wide character n-gram encoding), with what a data
scientist would do by hand around it:

- a column whose values are unique per row (an ID) is not a feature (``id_column`` names one);
- a mostly-numeric column with a few non-numeric cells (``n/a?``) is numeric, those cells missing;
- missing numbers are imputed with the training mean plus a 0/1 "missing" indicator, and a missing
  category is a category of its own;
- columns of nested values (lists, structs) are dropped with the reason;
- values beyond float32's range are refused, naming the column.

Everything is fitted on the training rows only (:meth:`TableEncoder.fit_transform`); the encoder
then transforms other rows the same way. ``summary`` tells, per input column, how it was used.
"""

from __future__ import annotations

import hashlib
import re
import warnings

import numpy as np

from limitlab.data.checks import _listing
from limitlab.errors import DataError, LimitlabError

FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMERIC_SHARE = 0.9      # a text column with at least this share of number cells is read as numbers
ID_MIN_ROWS = 10         # below this many rows no column is taken for an ID by itself
TEXT_WIDTH = 30          # width of skrub's StringEncoder for text with many distinct values
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|key|index)$|^(id|uuid)[_\s.-]|^unnamed: ?0$", re.IGNORECASE)


def skrub():
    """The skrub module, or a one-sentence LimitlabError saying how to install it."""
    try:
        import skrub as module
    except ImportError:
        raise LimitlabError("encoding tables needs skrub: pip install 'limitlab[tables]'") from None
    return module


def check_float32_range(frame, source: str) -> None:
    """Refuse numeric cells that float32 cannot hold (|v| > 3.4e38, or ±inf), naming the column."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind not in "iuf":
            continue
        a = values.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = np.abs(a) > FLOAT32_MAX
        if bad.any():
            raise DataError(f"column {column!r} of {source} has {int(bad.sum())} values beyond float32's range "
                            f"(e.g. {a[bad][0]:.4g}; the largest is ±3.4e38); rescale the column (e.g. a logarithm) "
                            "or drop it")


def _nested(values) -> str | None:
    """The kind of nested values a column holds (list, struct, ...), or None."""
    dtype = str(values.dtype)
    if dtype.startswith(("list", "large_list", "struct", "map", "fixed_size_list")):
        return dtype.split("<")[0].split("[")[0]
    if values.dtype.kind != "O":
        return None
    first = values.dropna()
    first = first.iloc[0] if len(first) else None
    if isinstance(first, (list, tuple, np.ndarray)):
        return "list"
    if isinstance(first, dict):
        return "struct"
    return None


def _is_text(values) -> bool:
    return values.dtype.kind in "OUS" or str(values.dtype) in ("str", "string")


def _looks_like_dates(values) -> bool:
    sample = values.dropna().astype(str).iloc[:200]
    if not len(sample):
        return False
    import pandas as pd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return parsed.notna().mean() >= NUMERIC_SHARE


def _is_id(name: str, values) -> bool:
    """Unique per row: text without spaces (not dates), or integers under an ID-like name."""
    present = values.dropna()
    if len(present) < ID_MIN_ROWS or present.nunique() != len(present):
        return False
    if values.dtype.kind in "iu":
        return bool(_ID_NAME.search(name))
    if not _is_text(values):
        return False
    text = present.astype(str)
    return not text.str.contains(r"\s", regex=True).any() and not _looks_like_dates(present)


def _coerce_numbers(values):
    """(numbers with non-numeric cells as NaN, the non-numeric cells) for a text column."""
    import pandas as pd
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & numbers.isna()
    return numbers.astype(np.float64), values[bad]


class TableEncoder:
    """Fitted on a table's training rows (a pandas DataFrame of feature columns, labels removed),
    turns any rows of that table into float32 features [N, width]."""

    def __init__(self, id_column: str | None = None, source: str = "the table"):
        self.id_column = id_column
        self.source = source

    # ------------------------------------------------------------------------------------ fit
    def fit_transform(self, frame, report=()) -> np.ndarray:
        """Decide how each column is used from these (training) rows, fit, and return their features.
        ``report``: frames of the table's other rows, whose non-numeric cells the summary also counts."""
        import pandas as pd
        from sklearn.impute import SimpleImputer

        frame = frame.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        if self.id_column is not None and self.id_column not in frame.columns:
            raise DataError(f"--id-column {self.id_column!r} is not a column of {self.source}; its columns are "
                            f"{_listing(frame.columns)}")
        self.columns, self.summary, self.dropped, self.numeric_text = list(frame.columns), [], {}, {}
        for column in frame.columns:
            values = frame[column]
            nested = _nested(values)
            if column == self.id_column:
                self.dropped[column] = "ID (--id-column): the key of each row, not a feature"
            elif nested:
                self.dropped[column] = f"dropped: nested values ({nested}) are not encoded; flatten them into columns"
            elif _is_text(values):
                numbers, bad = _coerce_numbers(values)
                present = int(values.notna().sum())
                if present and len(bad) < present and (present - len(bad)) >= NUMERIC_SHARE * present:
                    for other in report:
                        bad = pd.concat([bad, _coerce_numbers(other[column])[1]])
                    self.numeric_text[column] = (len(bad), [str(v) for v in bad.unique()[:3]])
                    frame[column] = numbers
                    continue
                if _is_id(column, values):
                    self.dropped[column] = "ID (a unique value per row): not a feature"
            elif _is_id(column, values):
                self.dropped[column] = "ID (a unique value per row): not a feature"
        frame = self._prepare(frame)
        check_float32_range(frame, self.source)
        self.vectorizer = skrub().TableVectorizer(
            high_cardinality=skrub().StringEncoder(n_components=TEXT_WIDTH, random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            encoded = self.vectorizer.fit_transform(frame)
        names = [str(c) for c in encoded.columns]
        x = encoded.to_numpy(dtype=np.float32)
        del encoded
        self.imputer = SimpleImputer(strategy="mean", add_indicator=True, keep_empty_features=True)
        x = self.imputer.fit_transform(x).astype(np.float32, copy=False) if np.isnan(x).any() else x
        self.imputing = hasattr(self.imputer, "statistics_")
        missing = [names[i] for i in self.imputer.indicator_.features_] if self.imputing else []
        self.feature_names = names + [f"{n} (missing)" for n in missing]
        self._summarise(frame, list(frame.columns), names, missing)
        self.checksum = features_checksum(x)
        return x

    def transform(self, frame) -> np.ndarray:
        """Features of other rows of the same table, encoded as the training rows were."""
        frame = frame.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        for column in self.numeric_text:
            frame[column] = _coerce_numbers(frame[column])[0]
        frame = self._prepare(frame)
        check_float32_range(frame, self.source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = self.vectorizer.transform(frame).to_numpy(dtype=np.float32)
        return self.imputer.transform(x).astype(np.float32, copy=False) if self.imputing else x

    def _prepare(self, frame):
        """Drop the ID and nested columns; dates read by pyarrow as objects become datetimes."""
        import datetime

        import pandas as pd
        frame = frame.drop(columns=list(self.dropped))
        for column in frame.columns:
            values = frame[column]
            if values.dtype.kind == "O":
                first = values.dropna()
                if len(first) and isinstance(first.iloc[0], (datetime.date, datetime.datetime)):
                    frame[column] = pd.to_datetime(values, errors="coerce")
        return frame

    # ------------------------------------------------------------------------------------ summary
    def _summarise(self, frame, kept: list[str], names: list[str], missing: list[str]) -> None:
        kinds = getattr(self.vectorizer, "column_to_kind_", {})
        outputs = getattr(self.vectorizer, "input_to_outputs_", {})
        produced = set(names)
        used = {"numeric": "number as it is", "datetime": "date: numeric parts (year, month, day, ..., seconds)",
                "low_cardinality": "category: one-hot (a missing cell is its own category)",
                "high_cardinality": f"text: {TEXT_WIDTH}-wide character n-gram encoding (tf-idf + SVD)"}
        for column in self.columns:
            entry = {"column": column}
            if column in self.dropped:
                entry.update(used_as=self.dropped[column], width=0)
            elif column not in kept or kinds.get(column) is None:
                entry.update(used_as="dropped: every cell is empty", width=0)
            else:
                outs = [o for o in outputs.get(column, []) if o in produced]
                indicators = [o for o in outs if o in missing]
                entry.update(used_as=used.get(kinds[column], kinds[column]), width=len(outs) + len(indicators))
                if indicators:
                    entry["note"] = "missing cells imputed with the training mean, plus a missing indicator"
                if self.numeric_text.get(column, (0,))[0]:
                    count, first = self.numeric_text[column]
                    entry["note"] = (f"{count} non-numeric cell{'s' if count > 1 else ''} read as missing "
                                     f"({', '.join(map(repr, first))})" + (f"; {entry['note']}" if "note" in entry
                                                                           else ""))
            self.summary.append(entry)

    def record(self) -> dict:
        """The JSON form: per-column use and width, the feature names, and the training checksum."""
        return {"columns": self.summary, "width": len(self.feature_names), "features": self.feature_names,
                "train_features_sha256": self.checksum}


def features_checksum(x: np.ndarray) -> str:
    """sha256 of float32 features (C order), to check that a refit reproduces the saved encoding."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


def summary_text(record: dict) -> str:
    """The encoding summary as lines: ``column -> how it is used [width]``."""
    entries = record["columns"]
    width = max([len(e["column"]) for e in entries] + [6])
    lines = [f"table encoding: {len(entries)} columns -> {record['width']} features"]
    for e in entries:
        note = f"; {e['note']}" if e.get("note") else ""
        lines.append(f"  {e['column']:<{width}}  {e['used_as']} [{e['width']}]{note}")
    return "\n".join(lines)


def estimator_features(estimator, X, reset: bool) -> np.ndarray:
    """LimitClassifier's features of a DataFrame: fitting (``reset``) fits the encoder on all of X
    and sets ``table_encoder_`` and ``encoding_summary_``; later calls (also with an array of the same
    columns) transform with it."""
    if not hasattr(X, "columns"):
        import pandas as pd
        X = pd.DataFrame(np.asarray(X), columns=estimator.table_encoder_.columns)
    if len(X) == 0 or len(X.columns) == 0:
        raise DataError(f"X has {len(X)} rows and {len(X.columns)} columns; it needs at least one of each")
    if reset:
        encoder = TableEncoder(source="X")
        x = encoder.fit_transform(X)
        estimator.table_encoder_, estimator.encoding_summary_ = encoder, encoder.record()
        return x
    if len(X.columns) != len(estimator.table_encoder_.columns):
        raise DataError(f"X has {len(X.columns)} columns, but the estimator was fitted on a table of "
                        f"{len(estimator.table_encoder_.columns)}")
    return estimator.table_encoder_.transform(X)
