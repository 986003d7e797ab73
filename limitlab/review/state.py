"""The reviewer's decisions: an append-only log, RUN/review/decisions.jsonl, one JSON object a line
(``index``, ``split``, ``decision``, ``label`` for accept/relabel, ``time``, and ``batch`` when one
action decided several examples). Each line is flushed and fsynced as it is written, so a killed
server loses nothing; undo is an appended record too, and replaying the file from the top gives the
decisions that stand."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from ..errors import LimitlabError

DECISIONS = ("accept", "keep", "relabel", "exclude", "unsure")
WITH_LABEL = ("accept", "relabel")


class Decisions:
    """The standing decision of each example, keyed by (split, index), replayed from and appended to
    ``path`` (None: kept in memory only)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.standing: dict[tuple[str, int], dict] = {}
        self._stack: list[tuple[tuple[str, int], dict | None, object]] = []  # (key, previous, batch)
        self._lock = threading.Lock()
        self._batches = 0
        if self.path is not None and self.path.exists():
            self._replay()

    def _replay(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self._apply(record)
            except (ValueError, KeyError, TypeError):
                if n >= len(lines) - 1:  # a line cut short by a crash mid-write: the decision never stood
                    break
                raise LimitlabError(f"line {n} of {self.path} is not a decision record; fix or remove that line") from None
            if isinstance(record.get("batch"), int):
                self._batches = max(self._batches, record["batch"] + 1)

    def _apply(self, record: dict) -> None:
        if record["decision"] == "undo":
            if not self._stack:
                return
            batch = self._stack[-1][2]
            while self._stack and (self._stack[-1][2] == batch if batch is not None else True):
                key, previous, _ = self._stack.pop()
                if previous is None:
                    self.standing.pop(key, None)
                else:
                    self.standing[key] = previous
                if batch is None:
                    break
            return
        if record["decision"] not in DECISIONS:
            raise ValueError(record["decision"])
        key = (str(record.get("split", "train")), int(record["index"]))
        self._stack.append((key, self.standing.get(key), record.get("batch")))
        self.standing[key] = record

    def _write(self, records: list[dict]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def decide(self, keys: list[tuple[str, int]], decision: str, label: int | None = None) -> list[dict]:
        """Record one decision for each example of ``keys`` (one batch when there are several)."""
        if decision not in DECISIONS:
            raise LimitlabError(f"unknown decision {decision!r}; use one of {', '.join(DECISIONS)}")
        if (decision in WITH_LABEL) != (label is not None):
            raise LimitlabError(f"decision {decision} {'needs' if decision in WITH_LABEL else 'takes no'} label")
        with self._lock:
            batch = None
            if len(keys) > 1:
                batch, self._batches = self._batches, self._batches + 1
            now = time.time()
            records = []
            for split, index in keys:
                r = {"index": int(index), "split": split, "decision": decision}
                if label is not None:
                    r["label"] = int(label)
                r["time"] = round(now, 3)
                if batch is not None:
                    r["batch"] = batch
                records.append(r)
            self._write(records)
            for r in records:
                self._apply(r)
            return records

    def undo(self) -> list[tuple[str, int]]:
        """Undo the last decision (a whole batch for a batch action); returns the keys it reverted."""
        with self._lock:
            if not self._stack:
                return []
            key, _, batch = self._stack[-1]
            keys = [k for k, _, b in self._stack if b == batch] if batch is not None else [key]
            record = {"index": key[1], "split": key[0], "decision": "undo", "time": round(time.time(), 3)}
            if batch is not None:
                record["batch"] = batch
            self._write([record])
            self._apply(record)
            return keys

    def get(self, key: tuple[str, int]) -> dict | None:
        """The standing decision record of ``key`` = (split, index), or None."""
        return self.standing.get(key)
