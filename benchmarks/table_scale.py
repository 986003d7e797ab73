"""Time and peak memory of reading + encoding a real-looking table, by number of rows.

Generates (once, cached in ``--dir``) CSV files of 30 columns: an ID (unique text per row), a date,
a 10-value category, 26 numbers (one with 5% missing cells, one with a typo cell ``n/a?``), and a
3-class label. For each size, a fresh process runs what ``limitlab train --dataset table:FILE``
does before training: ``read_table`` (the CSV reader) and ``encode_run_table`` (the skrub-based
encoding fitted on the run's training split, applied to every row), and reports its wall time and
peak resident memory (``ru_maxrss``), and its CPU time (user + system, all threads: on a busy
machine the figure least disturbed by other processes). ``--reader pyarrow`` measures pandas'
pyarrow engine instead of the C reader that limitlab uses.

    python benchmarks/table_scale.py --rows 10000 100000 1000000
    python benchmarks/table_scale.py --rows 1000000 --reader pyarrow
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NUMBERS = 26


def make_csv(path: Path, n: int, seed: int = 0) -> None:
    import pandas as pd

    rng = np.random.default_rng(seed)
    k = rng.integers(0, 3, n)
    columns = {"id": [f"cust-{i:08d}" for i in range(n)],
               "date": (pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), "D")).strftime("%Y-%m-%d"),
               "category": np.array([f"cat{i}" for i in range(10)])[(k * 3 + rng.integers(0, 4, n)) % 10]}
    for j in range(NUMBERS):
        columns[f"x{j}"] = (k * (j % 3) + rng.normal(size=n)).round(4)
    frame = pd.DataFrame(columns)
    frame.loc[rng.random(n) < 0.05, "x0"] = np.nan
    frame["x1"] = frame["x1"].astype(str)
    frame.loc[n // 2, "x1"] = "n/a?"
    frame["label"] = np.array(["low", "mid", "high"])[k]
    frame.to_csv(path, index=False)


def measure(path: str, reader: str) -> dict:
    """In this process: read + encode as a table run does; wall seconds and peak RSS."""
    import limitlab.data.table as table
    from limitlab.data.core import split_train_val
    from limitlab.data.table_run import encode_run_table

    import pandas as pd
    import pyarrow.csv  # noqa: F401  (imports are not counted: they cost seconds on a busy machine)
    import skrub  # noqa: F401
    import sklearn.impute  # noqa: F401

    if reader == "pyarrow":
        table._read_csv = lambda _pd, p: pd.read_csv(p, engine="pyarrow")
    t0, c0 = time.perf_counter(), time.process_time()
    data = table.read_table(path, id_column="id")
    t_read = time.perf_counter() - t0
    train_idx, _ = split_train_val(len(data.train_labels), 0.2, 0)
    record = encode_run_table(data, train_idx)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rows": len(data.train_labels) + len(data.test_labels), "read_s": round(t_read, 2),
            "read_encode_s": round(total, 2), "cpu_s": round(cpu, 2), "width": record["encoding"]["width"],
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "features_mb": round((data.train_images.numel() + data.test_images.numel()) * 4 / 2 ** 20)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dir", default="/tmp/limitlab-table-scale")
    p.add_argument("--reader", choices=("c", "pyarrow"), default="c")
    p.add_argument("--json", default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.reader)))
        return
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    print(f"{'rows':>9} {'reader':>8} {'read s':>7} {'read+encode s':>14} {'CPU s':>7} {'peak RSS MB':>12} {'width':>6}")
    for n in args.rows:
        path = folder / f"table-{n}.csv"
        if not path.exists():
            make_csv(path, n)
        out = subprocess.run([sys.executable, __file__, "--child", str(path), "--reader", args.reader],
                             capture_output=True, text=True, check=True)
        r = {**json.loads(out.stdout.strip().splitlines()[-1]), "reader": args.reader,
             "file_mb": round(path.stat().st_size / 2 ** 20)}
        results.append(r)
        print(f"{r['rows']:>9} {args.reader:>8} {r['read_s']:>7} {r['read_encode_s']:>14} {r['cpu_s']:>7} {r['peak_rss_mb']:>12} "
              f"{r['width']:>6}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
