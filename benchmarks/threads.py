"""Threads and the OpenMP wait policy, on the machine as it is and under load.

Each job runs in a fresh process with the environment under test, in alternation (the order rotates
every round), so that every setting sees the same machine:

- ``demo``: ``python -m limitlab demo --quiet --epochs E --out TMP`` (CE and LIMIT on digits);
- ``fit``: ``LimitClassifier().fit`` on benchmarks/table_speed.py's table (N rows, 20 features).

Settings: torch/OpenMP threads T ∈ {1, 2} (``OMP_NUM_THREADS``, which also sets torch's default),
and ``OMP_WAIT_POLICY`` unset (the OpenMP runtime's default: spin-wait) or ``PASSIVE`` (sleep).
"Loaded": one busy-loop process per core (``os.sched_getaffinity``) runs beside the jobs, started and
stopped by this script. Reported: wall seconds per job, and the 1-minute load average before each.

    python benchmarks/threads.py --out benchmarks/out/threads
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIT = """
import sys, time
sys.path.insert(0, {bench!r})
from table_speed import make_table
from limitlab import LimitClassifier
x, y, _ = make_table({n}, 0, 0.3)
t0 = time.perf_counter()
LimitClassifier(random_state=0).fit(x, y)
print(time.perf_counter() - t0)
"""


def job_command(job: str, args, tmp: str) -> list[str]:
    if job == "demo":
        return [sys.executable, "-m", "limitlab", "demo", "--quiet", "--epochs", str(args.demo_epochs),
                "--out", str(Path(tmp) / "demo")]
    return [sys.executable, "-c", FIT.format(bench=str(Path(__file__).parent), n=args.rows)]


def busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", nargs="+", default=["demo", "fit"], choices=["demo", "fit"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--policies", nargs="+", default=["default", "PASSIVE"])
    ap.add_argument("--loads", nargs="+", default=["as-is", "loaded"], choices=["as-is", "loaded"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--demo-epochs", type=int, default=10)
    ap.add_argument("--rows", type=int, default=10000)
    args = ap.parse_args()
    settings = [(t, p) for t in args.threads for p in args.policies]
    rows = []
    for load in args.loads:
        loops = busy_loops(len(os.sched_getaffinity(0))) if load == "loaded" else []
        try:
            time.sleep(2 if loops else 0)
            for r in range(args.rounds):
                k = r % len(settings)
                for threads, policy in settings[k:] + settings[:k]:
                    for job in args.jobs:
                        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
                        env.pop("OMP_WAIT_POLICY", None)
                        if policy != "default":
                            env["OMP_WAIT_POLICY"] = policy
                        with tempfile.TemporaryDirectory() as tmp:
                            before = os.getloadavg()[0]
                            t0 = time.perf_counter()
                            subprocess.run(job_command(job, args, tmp), env=env, check=True, capture_output=True)
                            row = {"load": load, "job": job, "threads": threads, "policy": policy,
                                   "seconds": time.perf_counter() - t0, "loadavg_before": before}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            for p in loops:
                p.kill()
                p.wait()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "threads.json").write_text(json.dumps({"args": vars(args), "cores": len(os.sched_getaffinity(0)),
                                                  "rows": rows}, indent=2) + "\n")
    lines = ["| machine | job | threads | OMP_WAIT_POLICY | seconds | load average before |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['load']} | {r['job']} | {r['threads']} | {r['policy']} | {r['seconds']:.1f} | "
                     f"{r['loadavg_before']:.1f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
