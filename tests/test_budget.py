"""limitlab.budget: the estimator's automatic sizes, and the estimator following them."""

import math

import numpy as np
import pytest

from limitlab import budget
from limitlab.budget import auto_budget, batch_size_for, mlp_size


@pytest.mark.parametrize("rows, batch", [(10, 32), (320, 32), (1000, 128), (9000, 1024), (90000, 1024)])
def test_batch_size_grows_with_rows_within_bounds(rows, batch):
    assert batch_size_for(rows) == batch


@pytest.mark.parametrize("features, width", [(1, 64), (4, 64), (20, 256), (30, 256), (64, 512), (784, 512)])
def test_mlp_width_follows_features(features, width):
    assert mlp_size(features) == (width, budget.DEPTH)


def test_small_table_trains_the_step_budget_on_every_row():
    b = auto_budget(500, 10)
    assert b.validation_fraction == 0.0
    assert b.batch_size == 64 and b.steps_per_epoch == 8          # 500 / 64, rounded up
    assert b.epochs == math.ceil(budget.STEPS / 8)


def test_large_table_holds_out_validation_and_counts_patience_in_steps():
    b = auto_budget(100_000, 20)
    assert b.validation_fraction == budget.VALIDATION_FRACTION
    assert b.batch_size == 1024 and b.steps_per_epoch == math.ceil(90_000 / 1024)
    assert b.epochs == budget.MIN_EPOCHS == 20                    # 500 steps would be only 6 passes
    assert b.patience == math.ceil(budget.PATIENCE_STEPS / b.steps_per_epoch)


def test_tiny_table_epochs_are_capped():
    assert auto_budget(20, 3).epochs == budget.MAX_EPOCHS


def test_given_values_override():
    b = auto_budget(5000, 8, batch_size=100, validation_fraction=0.0)
    assert (b.batch_size, b.validation_fraction, b.steps_per_epoch) == (100, 0.0, 50)


def test_estimator_follows_the_budget(monkeypatch):
    from limitlab import LimitClassifier

    monkeypatch.setattr(budget, "STEPS", 12)
    monkeypatch.setattr(budget, "MIN_EPOCHS", 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    clf = LimitClassifier(random_state=0).fit(x, y)
    b = auto_budget(200, 6)                       # 200 rows: no validation split, batch 32, 7 steps per epoch
    assert len(clf.history_) == b.epochs == 2 and clf.best_epoch_ == 2
    assert clf.classifier_.hidden[1].out_features == b.width == 64
    assert all(h["val_accuracy"] is None and h["train_noisy_accuracy"] is None for h in clf.history_)
    explicit = LimitClassifier(epochs=3, batch_size=50, validation_fraction=0.0, random_state=0).fit(x, y)
    assert len(explicit.history_) == 3


def test_resolve_auto_and_given_parameters():
    from limitlab.budget import resolve

    auto = resolve(20_000, 20, epochs="auto", patience="auto", validation_fraction="auto", batch_size="auto", lr="auto")
    assert auto.one_cycle and auto.lr == budget.AUTO_LR and auto.validation_fraction == budget.VALIDATION_FRACTION
    given = resolve(20_000, 20, epochs=7, patience="auto", validation_fraction=0.3, batch_size=64, lr=0.01)
    assert not given.one_cycle and (given.epochs, given.patience, given.batch_size, given.lr) == (7, 20, 64, 0.01)
    assert given.validation_fraction == 0.3
    constant = resolve(500, 4, epochs=5, patience=None, validation_fraction="auto", batch_size="auto", lr="auto")
    assert constant.lr == budget.CONSTANT_LR and constant.patience is None
    brought = resolve(5000, 4, epochs="auto", patience="auto", validation_fraction="auto", batch_size="auto",
                      lr="auto", given_validation=True)
    assert brought.validation_fraction == 0.0 and brought.patience == math.ceil(budget.PATIENCE_STEPS / brought.steps_per_epoch)
