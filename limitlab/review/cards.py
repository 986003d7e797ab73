"""What one suspect's card shows: the given label, the top-3 classes with their probabilities, score
and rank, the example (an image as a PNG made on demand and cached, or the table row with the
features that most separate the given from the suggested class marked), and the training examples
most similar to it in the classifier's penultimate-layer features, from the given and the suggested
class."""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections import OrderedDict

import numpy as np

from .source import ReviewData

NEIGHBOURS = 4
MARKED = 3
SIZES = {"card": 224, "thumb": 72}


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file of ``pixels`` (uint8 [H, W] grey or [H, W, 3] RGB), written with zlib only."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, -1)], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def to_pixels(image, size: int) -> np.ndarray:
    """uint8 [C, H, W] (C = 1 or 3) as [H', W'] or [H', W', 3], scaled by nearest neighbour so that its
    longer side is about ``size`` (whole-number factors up, strides down: no blur)."""
    x = np.asarray(image)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else x.transpose(1, 2, 0)
    if x.dtype != np.uint8:  # float images: stretch to 0..255
        lo, hi = float(np.min(x)), float(np.max(x))
        x = ((x - lo) / (hi - lo or 1.0) * 255).round().astype(np.uint8)
    longest = max(x.shape[:2])
    if longest < size:
        f = max(1, size // longest)
        x = np.repeat(np.repeat(x, f, axis=0), f, axis=1)
    elif longest > size:
        step = math.ceil(longest / size)
        x = x[::step, ::step]
    return x


class Cards:
    """Builds cards and PNGs for a :class:`ReviewData`; PNGs are cached (least recently used first out)."""

    def __init__(self, data: ReviewData, cache_size: int = 2048):
        self.data = data
        self._png: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.cache_size = cache_size
        train = data.pools.get("train")
        self._by_class = {}
        if train is not None:
            for c in range(len(data.class_names)):
                members = np.flatnonzero(train.labels == c)
                self._by_class[c] = (members, train.features[members])
        self._means = None
        if data.kind == "table" and train is not None and train.x is not None:
            self._table_stats(train)

    def _table_stats(self, train) -> None:
        x = train.x.reshape(len(train.x), -1).astype(np.float64)
        self._mu, self._sd = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1.0)
        z = (x - self._mu) / self._sd
        k = len(self.data.class_names)
        self._means = np.stack([z[train.labels == c].mean(0) if (train.labels == c).any() else np.zeros(z.shape[1])
                                for c in range(k)])

    def png(self, split: str, index: int, size: str) -> bytes:
        """The PNG of one example at ``size`` ("card" or "thumb"), made once and cached."""
        key = (split, int(index), size)
        with self._lock:
            if key in self._png:
                self._png.move_to_end(key)
                return self._png[key]
        body = png_bytes(to_pixels(self.data.example(split, index), SIZES[size]))
        with self._lock:
            self._png[key] = body
            while len(self._png) > self.cache_size:
                self._png.popitem(last=False)
        return body

    def neighbours(self, i: int, cls: int) -> list[dict]:
        """The training examples of class ``cls`` (given labels) nearest to suspect ``i`` in cosine
        similarity of the penultimate features; the suspect itself left out."""
        d = self.data
        members, feats = self._by_class.get(int(cls), (np.zeros(0, int), None))
        if not len(members):
            return []
        split, index = d.key(i)
        pool = d.pools[split]
        sim = feats @ pool.features[pool.position(index)]
        train = d.pools["train"]
        if split == "train":
            sim = np.where(train.index[members] == index, -np.inf, sim)
        top = np.argpartition(-sim, min(NEIGHBOURS, len(sim) - 1))[:NEIGHBOURS]
        top = top[np.argsort(-sim[top], kind="stable")]
        return [{"split": "train", "index": int(train.index[members[t]]), "similarity": round(float(sim[t]), 3)}
                for t in top if np.isfinite(sim[t])]

    def table_row(self, i: int, given: int, suggested: int) -> dict:
        """The example's columns and values (from the user's file when there is one), with the features
        that most point to the suggested class rather than the given one."""
        d = self.data
        split, index = d.key(i)
        x = np.asarray(d.example(split, index), dtype=np.float64).reshape(-1)
        marked = []
        if self._means is not None:
            z = (x - self._mu) / self._sd
            diff = self._means[suggested] - self._means[given]
            pull = (z - (self._means[suggested] + self._means[given]) / 2) * diff  # > 0: looks like suggested
            for j in np.argsort(-pull, kind="stable")[:MARKED]:
                if pull[j] > 0:
                    name = d.feature_names[j] if j < len(d.feature_names) else f"x{j}"
                    marked.append({"feature": name, "column": name.split("=", 1)[0],
                                   "value": float(x[j]) if "=" not in name else name.split("=", 1)[1],
                                   "given_mean": _orig(self, j, given), "suggested_mean": _orig(self, j, suggested)})
        columns = []
        if d.table is not None and d.file_row is not None:
            row = d.table.iloc[int(d.file_row[i])]
            columns = [(str(c), _jsonable(v)) for c, v in row.items() if c != d.label_column]
        else:
            names = d.feature_names or [f"x{j}" for j in range(len(x))]
            columns = [(n, float(v)) for n, v in zip(names, x)]
        marked_columns = {m["column"] for m in marked}
        return {"columns": [{"name": n, "value": v, "marked": n in marked_columns} for n, v in columns],
                "marked": marked}

    def card(self, i: int, decision: dict | None) -> dict:
        """Everything suspect ``i``'s card shows, as JSON-ready data."""
        d = self.data
        split, index = d.key(i)
        given, suggested = int(d.given[i]), int(d.suggested[i])
        names = d.class_names
        out = {"id": i, "rank": i + 1, "index": index, "split": split, "score": round(float(d.score[i]), 4),
               "flagged": bool(d.flagged[i]), "given": {"id": given, "name": names[given]},
               "suggested": {"id": suggested, "name": names[suggested]},
               "top": [{"id": int(c), "name": names[int(c)], "p": round(float(p), 4)}
                       for c, p in zip(d.top[i][:3], d.top_p[i][:3])],
               "choices": [{"id": int(c), "name": names[int(c)], "p": round(float(p), 4)}
                           for c, p in zip(d.top[i], d.top_p[i])],
               "decision": decision, "kind": d.kind,
               "neighbours": {"given": self.neighbours(i, given), "suggested": self.neighbours(i, suggested)}}
        if d.kind == "table":
            out["row"] = self.table_row(i, given, suggested)
        return out


def _orig(cards: Cards, j: int, c: int) -> float:
    """Class ``c``'s mean of feature ``j`` in the feature's own units."""
    return round(float(cards._means[c, j] * cards._sd[j] + cards._mu[j]), 4)


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    return v if isinstance(v, (int, str, bool)) or v is None else str(v)
