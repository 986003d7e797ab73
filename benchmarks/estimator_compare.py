"""Do two source trees train the same estimator? ``find_label_issues`` with the defaults on a
``make_classification`` table (20 features, K = 5, uniform noise 0.3, seed 0), LIMIT_L and CE, at
600 and 2,500 rows; saves each run's ``label_quality`` and ``predicted_label`` and prints the CPU
seconds per size. Run it with each tree first on PYTHONPATH, then compare:

    OMP_NUM_THREADS=1 PYTHONPATH=TREE_A python benchmarks/estimator_compare.py run /tmp/a.npz
    OMP_NUM_THREADS=1 PYTHONPATH=TREE_B python benchmarks/estimator_compare.py run /tmp/b.npz
    python benchmarks/estimator_compare.py compare /tmp/a.npz /tmp/b.npz
"""

from __future__ import annotations

import sys
import time

import numpy as np


def run(path: str) -> None:
    from sklearn.datasets import make_classification

    from limitlab import find_label_issues, noise

    out = {}
    for n in (600, 2500):
        x, y = make_classification(n_samples=n, n_features=20, n_informative=10, n_redundant=5, n_classes=5,
                                   random_state=0)
        noisy = noise.corrupt_labels(y, noise.parse_noise("uniform:0.3", 5), 0)
        t = time.process_time()
        for method in ("limit-l", "ce"):
            table = find_label_issues(x.astype(np.float32), noisy, method=method, random_state=0)
            out[f"{n}_{method}_quality"] = table["label_quality"].to_numpy()
            out[f"{n}_{method}_predicted"] = table["predicted_label"].to_numpy()
        print(f"{n} rows: {time.process_time() - t:.1f} CPU s", file=sys.stderr)
    np.savez(path, **out)


def compare(a: str, b: str) -> None:
    a, b = np.load(a), np.load(b)
    for k in a.files:
        print(f"{k}: {'equal' if np.array_equal(a[k], b[k]) else 'differs'}")


if __name__ == "__main__":
    {"run": run, "compare": compare}[sys.argv[1]](*sys.argv[2:])
