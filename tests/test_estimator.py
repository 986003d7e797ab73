"""LimitClassifier and find_label_issues: the scikit-learn contract, cleanlab's columns, bad input."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from limitlab import LimitClassifier, find_label_issues, metrics, noise  # noqa: E402
from limitlab.data import split_train_val  # noqa: E402


def small_net(input_shape, num_classes):
    """A small network for fast tests (module level, so estimators holding it pickle)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 32), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Linear(32, num_classes))


FAST = dict(epochs=15, batch_size=16, random_state=0, module=small_net)


# scikit-learn's own estimator checks, on the default network and on a user factory. None is
# skipped by us (check_array_api_input skips itself unless SCIPY_ARRAY_API is set).
@parametrize_with_checks([LimitClassifier(epochs=3, random_state=0),
                          LimitClassifier(epochs=8, batch_size=32, random_state=0, module=small_net, method="ce")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    """Three well separated classes in 5-D, 20% of the labels flipped (uniform), with the truth."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(3), 100))
    centers = rng.normal(0, 4, size=(3, 5))
    x = (centers[y] + rng.normal(size=(300, 5))).astype(np.float32)
    noisy = noise.corrupt_labels(y, noise.uniform_transition(3, 0.2), seed=0)
    return x, y, noisy


def test_fit_predict_and_fitted_attributes(blobs):
    x, y, noisy = blobs
    clf = LimitClassifier(**FAST).fit(x, noisy)
    assert list(clf.classes_) == [0, 1, 2] and clf.n_features_in_ == 5
    assert isinstance(clf.classifier_, nn.Module) and isinstance(clf.q_network_, nn.Module)
    assert 1 <= clf.best_epoch_ <= len(clf.history_) <= 15
    assert {"train_loss", "train_q_fit", "train_noisy_accuracy", "val_accuracy", "train_seconds"} <= set(clf.history_[0])
    assert clf.history_[0]["memorized_fraction"] is None  # unknown without true labels
    proba = clf.predict_proba(x)
    assert proba.shape == (300, 3) and np.allclose(proba.sum(1), 1)
    assert (clf.predict(x) == clf.classes_[proba.argmax(1)]).all()
    assert clf.score(x, y) > 0.9


def test_early_stopping_restores_the_best_validation_epoch(blobs):
    x, _, noisy = blobs
    clf = LimitClassifier(module=small_net, epochs=30, patience=3, validation_fraction=0.2, random_state=1).fit(x, noisy)
    vals = [h["val_accuracy"] for h in clf.history_]
    assert len(vals) < 30 and len(vals) - clf.best_epoch_ == 3      # stopped 3 epochs after the best
    assert clf.best_epoch_ == 1 + int(np.argmax(vals))
    _, val_idx = split_train_val(300, 0.2, 1)                         # the same seeded split
    assert clf.score(x[val_idx], noisy[val_idx]) == pytest.approx(vals[clf.best_epoch_ - 1])


def test_no_validation_keeps_the_last_epoch(blobs):
    x, _, noisy = blobs
    clf = LimitClassifier(**{**FAST, "epochs": 3}, validation_fraction=0.0).fit(x, noisy)
    assert clf.best_epoch_ == 3 and clf.history_[-1]["val_accuracy"] is None


def test_memorization_measurements_with_true_labels(blobs):
    x, y, noisy = blobs
    clf = LimitClassifier(**FAST, validation_fraction=0.2).fit(x, noisy, true_labels=y)
    train_idx, _ = split_train_val(300, 0.2, 0)
    # H(noisy | x) from the empirical transition of the training part, computed independently
    t, n = np.zeros((3, 3)), len(train_idx)
    for a, b in zip(y[train_idx], noisy[train_idx]):
        t[a, b] += 1
    prior = t.sum(1) / n
    t /= t.sum(1, keepdims=True)
    h = -sum(prior[i] * sum(p * math.log2(p) for p in t[i] if p > 0) for i in range(3))
    last = clf.history_[-1]
    r = 1 - last["train_noisy_accuracy"]
    expected = max(0.0, h - metrics.binary_entropy_bits(r) - r * math.log2(2))
    assert last["info_lower_bound_bits"] == pytest.approx(expected, abs=1e-9)
    assert 0 <= last["memorized_fraction"] <= 1 and 0 <= last["corrected_fraction"] <= 1


def test_clone_pipeline_cross_val_and_grid_search(blobs):
    x, y, noisy = blobs
    clf = LimitClassifier(**FAST, beta=3.0)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "classes_")
    pipe = make_pipeline(StandardScaler(), LimitClassifier(**FAST)).fit(x * 100 + 7, noisy)
    assert pipe.score(x * 100 + 7, y) > 0.9
    scores = cross_val_score(LimitClassifier(**FAST), x, noisy, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()
    search = GridSearchCV(LimitClassifier(**FAST), {"beta": [0.0, 10.0]}, cv=2).fit(x, noisy)
    assert search.best_params_["beta"] in (0.0, 10.0) and len(search.cv_results_["params"]) == 2


def test_string_and_noncontiguous_labels(blobs):
    x, _, noisy = blobs
    names = np.array(["cat", "dog", "emu"])[noisy]
    clf = LimitClassifier(**FAST).fit(x, names)
    assert list(clf.classes_) == ["cat", "dog", "emu"] and set(clf.predict(x)) <= set(names)
    assert set(clf.label_issues_["given_label"]) == {"cat", "dog", "emu"}
    odd = np.array([3, 10, 42])[noisy]
    clf = LimitClassifier(**FAST).fit(x, odd)
    assert list(clf.classes_) == [3, 10, 42] and set(clf.predict(x)) <= {3, 10, 42}


def test_dataframe_and_torch_inputs(blobs):
    x, y, noisy = blobs
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    clf = LimitClassifier(**FAST).fit(frame, pd.Series(noisy))
    assert list(clf.feature_names_in_) == [f"f{i}" for i in range(5)]
    from_frame = clf.predict_proba(frame)
    clf_t = LimitClassifier(**FAST).fit(torch.from_numpy(x), torch.from_numpy(noisy))
    assert not hasattr(clf_t, "feature_names_in_")
    np.testing.assert_allclose(clf_t.predict_proba(torch.from_numpy(x)), from_frame, rtol=1e-5, atol=1e-6)


def test_image_arrays_get_per_channel_standardisation():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    x = rng.integers(0, 100, size=(80, 2, 8, 8)).astype(np.uint8)
    x[y == 1, 0] += 120                       # class 1 is brighter in channel 0
    clf = LimitClassifier(epochs=3, random_state=0).fit(x, y)
    assert clf.score(x, y) > 0.9
    assert clf._scale.shape == (2, 1, 1)       # per channel, not per pixel


def test_validation_data(blobs):
    x, y, noisy = blobs
    clf = LimitClassifier(**FAST).fit(x[:200], noisy[:200], validation_data=(x[200:], y[200:]))
    assert len(clf.label_issues_) == 200       # all of X trains; the validation rows are apart
    assert clf.history_[clf.best_epoch_ - 1]["val_accuracy"] == pytest.approx(clf.score(x[200:], y[200:]))
    with pytest.raises(ValueError, match="validation_data has label 7 that the training set never has"):
        LimitClassifier(**FAST).fit(x[:200], noisy[:200], validation_data=(x[200:202], [0, 7]))


def test_label_issues_table_follows_cleanlab_and_the_gradient_mismatch(blobs):
    x, y, noisy = blobs
    clf = LimitClassifier(**FAST, validation_fraction=0.0).fit(x, noisy)
    table = clf.label_issues_
    assert list(table.columns) == ["is_label_issue", "label_quality", "given_label", "predicted_label"]
    assert len(table) == 300 and (table["given_label"].to_numpy() == noisy).all()
    # independent: standardise with all rows (no validation split), run q, 1 - ||e_y - s(q)||_2 / sqrt(2)
    std = x.std(0)
    inputs = torch.from_numpy((x - x.mean(0)) / std)
    with torch.no_grad():
        s_q = clf.q_network_.eval()(inputs.float()).softmax(1).double().numpy()
    gap = np.eye(3)[noisy] - s_q
    np.testing.assert_allclose(table["label_quality"], 1 - np.linalg.norm(gap, axis=1) / math.sqrt(2), atol=1e-5)
    assert ((table["predicted_label"] != table["given_label"]) == table["is_label_issue"]).all()
    assert (table["predicted_label"].to_numpy() == clf.predict(x)).all()
    # the flags find the flipped labels
    flipped = noisy != y
    assert metrics.flagged_metrics(table["is_label_issue"].to_numpy(), flipped)["f1"] > 0.8


def test_ce_label_quality_is_self_confidence(blobs):
    x, _, noisy = blobs
    clf = LimitClassifier(**FAST, method="ce").fit(x, noisy)
    assert clf.q_network_ is None
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(clf.label_issues_["label_quality"], proba[np.arange(300), noisy], atol=1e-6)


def test_find_label_issues_table_and_ranked_indices(blobs):
    x, _, noisy = blobs
    table = find_label_issues(x, noisy, **FAST)
    pd.testing.assert_frame_equal(table, LimitClassifier(**FAST).fit(x, noisy).label_issues_)
    ranked = find_label_issues(x, noisy, **FAST, return_indices_ranked_by="label_quality")
    assert sorted(ranked) == list(np.flatnonzero(table["is_label_issue"]))
    assert list(table["label_quality"].to_numpy()[ranked]) == sorted(table["label_quality"][table["is_label_issue"]])
    with pytest.raises(ValueError, match="return_indices_ranked_by"):
        find_label_issues(x, noisy, return_indices_ranked_by="self_confidence")


def test_custom_module_and_model_names(blobs):
    x, _, noisy = blobs
    for module in (small_net, "linear", "mlp"):
        clf = LimitClassifier(epochs=2, random_state=0, module=module).fit(x, noisy)
        assert clf.predict(x).shape == (300,)

    def wrong(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes + 1))
    with pytest.raises(ValueError, match=r"returns \(2, 4\) .* must return logits of shape \(2, 3\)"):
        LimitClassifier(epochs=1, module=wrong).fit(x, noisy)
    with pytest.raises(ValueError, match="not a network instance"):
        LimitClassifier(module=small_net((5,), 3)).fit(x, noisy)
    with pytest.raises(ValueError, match="cannot import no_such_module"):
        LimitClassifier(module="no_such_module:f").fit(x, noisy)


def test_fit_leaves_the_global_rng_alone(blobs):
    x, _, noisy = blobs
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    LimitClassifier(**{**FAST, "epochs": 1}).fit(x, noisy)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------------------- bad input: one sentence each
def test_nan_and_inf_are_counted_per_named_column(blobs):
    x, _, noisy = blobs
    frame = pd.DataFrame(x, columns=list("abcde"))
    frame.iloc[[1, 2], 1] = np.nan
    frame.iloc[5, 3] = np.inf
    with pytest.raises(ValueError, match=r"^X has 3 missing or infinite values \(NaN, inf\) in columns b \(2\), "
                                         r"d \(1\); fill or drop them before training$"):
        LimitClassifier(**FAST).fit(frame, noisy)


def test_different_lengths(blobs):
    x, _, noisy = blobs
    with pytest.raises(ValueError, match=r"^X and y have different lengths \(300 rows of features, 299 labels\)"):
        LimitClassifier(**FAST).fit(x, noisy[:-1])


def test_single_class(blobs):
    x, _, _ = blobs
    with pytest.raises(ValueError, match=r"^y has only one class \('a'\); a classifier needs examples of at least two"):
        LimitClassifier(**FAST).fit(x, ["a"] * 300)


def test_one_dimensional_x(blobs):
    _, _, noisy = blobs
    with pytest.raises(ValueError, match=r"^X is 1-D \(shape \(300,\)\) but must be 2-D"):
        LimitClassifier(**FAST).fit(np.arange(300.0), noisy)


def test_sparse_x_is_refused_with_a_reason(blobs):
    sparse = pytest.importorskip("scipy.sparse")
    x, _, noisy = blobs
    with pytest.raises(ValueError, match=r"^X is a sparse matrix, which is not supported \(the networks train on dense"):
        LimitClassifier(**FAST).fit(sparse.csr_matrix(x), noisy)


def test_bad_parameters():
    x, y = np.zeros((4, 2)), [0, 1, 0, 1]
    for params, text in [(dict(method="nope"), "method must be one of"), (dict(epochs=0), "epochs must be"),
                         (dict(validation_fraction=1.0), "validation_fraction must be in"),
                         (dict(method_options={"epochs": 3}), "method_options has unknown")]:
        with pytest.raises(ValueError, match=text):
            LimitClassifier(**params).fit(x, y)


def test_cleanlab_clean_learning_accepts_the_ce_estimator(blobs):
    cleanlab = pytest.importorskip("cleanlab.classification")
    x, y, noisy = blobs
    cl = cleanlab.CleanLearning(LimitClassifier(**FAST, method="ce"), cv_n_folds=3, seed=0).fit(x, noisy)
    assert cl.predict(x).shape == (300,) and cl.score(x, y) > 0.8


def test_import_limitlab_stays_light():
    code = ("import sys, limitlab; limitlab.LIMIT; "
            "print(sorted(m for m in ('sklearn', 'pandas', 'limitlab.estimator') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
