"""A table run's encoding and source, kept with the run (``table.json`` in the run directory).

The features of a ``.csv`` / ``.parquet`` run come from :class:`limitlab.data.encoding.TableEncoder`
fitted on the run's training split only. The fitted encoder is not saved as an object (unpickling
a file runs code, and nothing in a run directory may): ``--resume`` and ``detect`` refit it on the
same training rows, which is deterministic, and check the result against what the run saved here:
the table file's sha256 and the sha256 of the encoded training features. ``table.json`` also
records the table's absolute path, so a run resumed from another working folder finds its table,
and the encoding summary that ``train`` prints and ``detect`` shows.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from limitlab.data.encoding import TableEncoder, summary_text
from limitlab.errors import DataError, LimitlabError

TABLE_RECORD = "table.json"  # = limitlab.rundir.TABLE


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(run_dir: str | Path | None) -> dict | None:
    """The table record a run saved (None: no run, or not a table run)."""
    if run_dir is None:
        return None
    path = Path(run_dir) / TABLE_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        record["source"]["sha256"], record["encoding"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LimitlabError(f"{path} is unreadable or not limitlab's ({type(e).__name__}); "
                            "start the run again with --overwrite") from None
    return record


def locate_table(argument: str, candidates: list[Path], saved: dict | None) -> str:
    """The table file for ``table:ARGUMENT``: the first of ``candidates`` that exists, else the
    absolute path the run recorded; when the run recorded one, its checksum must match."""
    found = next((p for p in candidates if p.is_file()), None)
    if saved is None:
        return str(found) if found is not None else argument
    recorded = Path(saved["source"]["path"])
    if found is None and recorded.is_file():
        found = recorded
    if found is None:
        raise DataError(f"cannot find the run's table {argument!r} (recorded at {recorded}); run from the folder it "
                        "was started in, or pass --data-dir with the folder that now holds the file")
    if file_sha256(found) != saved["source"]["sha256"]:
        raise DataError(f"{found} is not the table this run was trained on (its sha256 differs from the one recorded "
                        f"for {recorded}); give the original file, e.g. with --data-dir")
    return str(found)


def encode_run_table(data, train_idx: np.ndarray, saved: dict | None = None) -> dict:
    """Fit the encoding on the training rows ``train_idx`` of ``data`` (a TableData read from a
    .csv/.parquet), fill ``data.train_images`` / ``test_images`` / ``feature_names``, and return the
    run's table record. With ``saved`` (the record of the run being resumed or scored), the refit
    must reproduce it."""
    encoder = TableEncoder(id_column=data.id_column, source=str(data.path))
    frame = data.frame
    rest = np.setdiff1d(np.arange(len(frame)), train_idx)
    others = [frame.iloc[rest]] + ([data.test_frame] if data.test_frame is not None else [])
    fitted = encoder.fit_transform(frame.iloc[train_idx], report=others)
    x = np.empty((len(frame), fitted.shape[1]), dtype=np.float32)
    x[train_idx] = fitted
    del fitted
    if len(rest):
        x[rest] = encoder.transform(frame.iloc[rest])
    test = encoder.transform(data.test_frame) if data.test_frame is not None else x[:0]
    data.train_images, data.test_images = torch.from_numpy(x), torch.from_numpy(np.require(test, requirements="W"))
    data.feature_names = list(encoder.feature_names)
    data.frame = data.test_frame = None  # the text is no longer needed
    record = {"source": {"path": str(data.path), "sha256": file_sha256(data.path)},
              "id_column": data.id_column, "encoding": encoder.record()}
    if saved is not None and saved["encoding"].get("train_features_sha256") != encoder.checksum:
        raise DataError(f"the features re-encoded from {data.path} differ from those the run was trained on (another "
                        "skrub or scikit-learn version?); train the run again with --overwrite")
    return record


def show(record: dict, stream=None) -> None:
    """Print the encoding summary."""
    print(summary_text(record["encoding"]), file=stream or sys.stderr, flush=True)
