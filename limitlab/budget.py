"""How much training a table gets when the estimator's sizes are left at "auto": a number of optimizer
steps (not of epochs), a batch size that grows with the rows, a one-cycle learning-rate schedule over
those steps, a noisy-validation split with a plateau patience measured in steps only where the table
is large enough for it, and an MLP sized to the input.

The rules come from measurements on synthetic and scikit-learn tables (benchmarks/table_speed.py,
benchmarks/small_tables.py; numbers in benchmarks/RESULTS.md), never from test splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Below this many rows the noisy-validation split costs more than it gives (a fifth of a few hundred
# noisy labels is too few to pick an epoch: it stopped one fit at epoch 3): train the whole step
# budget on every row instead.
MIN_ROWS_FOR_VALIDATION = 2000
VALIDATION_FRACTION = 0.1
STEPS = 500                  # optimizer steps of a fit, whatever the number of rows ...
MIN_EPOCHS = 20              # ... and at least this many passes over the training rows (large tables)
MAX_EPOCHS = 300             # ... but no more passes over a tiny table than this
PATIENCE_STEPS = 400         # stop after this many steps without a better validation accuracy
BATCH_DIVISOR = 10           # batch size about rows / BATCH_DIVISOR (so about that many steps per epoch) ...
MIN_BATCH, MAX_BATCH = 32, 1024  # ... within these bounds
WIDTH_PER_FEATURE = 8        # MLP width about WIDTH_PER_FEATURE × features ...
MIN_WIDTH, MAX_WIDTH = 64, 512   # ... within these bounds
DEPTH = 2                    # hidden layers of the MLP
AUTO_LR = 3e-3               # the peak of the one-cycle schedule over the step budget
CONSTANT_LR = 1e-3           # Adam's constant learning rate when the epochs are given


@dataclass(frozen=True)
class Budget:
    """The training sizes for one table (see :func:`auto_budget`)."""

    batch_size: int
    epochs: int
    steps_per_epoch: int
    validation_fraction: float
    patience: int            # in epochs (PATIENCE_STEPS); it matters only where there is a validation split
    width: int               # MLP hidden width
    depth: int               # MLP hidden layers
    lr: float = AUTO_LR      # Adam's learning rate: the one-cycle peak, or constant
    one_cycle: bool = True   # the learning rate follows a one-cycle schedule over epochs × steps_per_epoch


def batch_size_for(n_rows: int) -> int:
    """A power of two near n_rows / 10, between 32 and 1024: about 10 steps per epoch on mid-sized
    tables; larger batches cost less per row (and per step, Python's overhead is most of a small
    batch's step)."""
    return int(min(MAX_BATCH, max(MIN_BATCH, 2 ** round(math.log2(max(n_rows, 1) / BATCH_DIVISOR)))))


def mlp_size(n_features: int) -> tuple[int, int]:
    """(width, depth) of the MLP for rows of n_features: 2 hidden layers of a power of two near 8 ×
    n_features, between 64 and 512 (4 × 512 is the memorization study's network, far more than a
    table of 20 columns needs, and 16× the arithmetic of 2 × 256)."""
    width = int(min(MAX_WIDTH, max(MIN_WIDTH, 2 ** math.ceil(math.log2(WIDTH_PER_FEATURE * max(n_features, 1))))))
    return width, DEPTH


def auto_budget(n_rows: int, n_features: int, *, batch_size: int | None = None,
                validation_fraction: float | None = None) -> Budget:
    """The sizes for a table of ``n_rows`` rows and ``n_features`` features; ``batch_size`` and
    ``validation_fraction`` override the automatic choices when given."""
    if validation_fraction is None:
        validation_fraction = VALIDATION_FRACTION if n_rows >= MIN_ROWS_FOR_VALIDATION else 0.0
    n_train = max(2, n_rows - int(round(validation_fraction * n_rows)))
    batch = batch_size or batch_size_for(n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    epochs = max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(STEPS / steps_per_epoch)))
    patience = max(1, math.ceil(PATIENCE_STEPS / steps_per_epoch))
    width, depth = mlp_size(n_features)
    return Budget(batch, epochs, steps_per_epoch, validation_fraction, patience, width, depth)


def resolve(n_rows: int, n_features: int, *, epochs, patience, validation_fraction, batch_size, lr,
            given_validation: bool = False) -> Budget:
    """The sizes of one fit from the estimator's parameters: :func:`auto_budget` for those left at
    "auto", the given values for the others. Given epochs train at a constant lr (1e-3 unless
    given) with patience 20 unless given; ``given_validation``: the caller brings a validation set."""
    fraction = 0.0 if given_validation else None if validation_fraction == "auto" else float(validation_fraction)
    auto = auto_budget(n_rows, n_features, batch_size=None if batch_size == "auto" else batch_size,
                       validation_fraction=fraction)
    one_cycle = epochs == "auto"
    return replace(auto, epochs=auto.epochs if one_cycle else epochs, one_cycle=one_cycle,
                   patience=patience if patience != "auto" else auto.patience if one_cycle else 20,
                   lr=float(lr) if lr != "auto" else AUTO_LR if one_cycle else CONSTANT_LR)
