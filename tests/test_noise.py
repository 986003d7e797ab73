"""Tests for limitlab.noise: transition matrices, corruption, file loading, specs, the Fano bound."""

import math

import numpy as np
import pytest

from limitlab import noise
from limitlab.errors import LimitlabError
from limitlab.metrics import fano_information_lower_bound, noisy_label_entropy_bits
from limitlab.noise import (
    corrupt_labels,
    load_transition,
    pair_cifar10_transition,
    pairflip_transition,
    parse_noise,
    realised_rate,
    symmetric_transition,
    uniform_transition,
)


def assert_row_stochastic(t, k):
    assert t.shape == (k, k)
    assert np.all(t >= 0)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-12)


def hb(r):
    """Binary entropy in bits, written out independently of the module."""
    return 0.0 if r in (0.0, 1.0) else -r * math.log2(r) - (1 - r) * math.log2(1 - r)


# ---------------------------------------------------------------- transition matrices

def test_uniform_matches_hand_built():
    k, p = 4, 0.3
    expected = np.array([[0.7, 0.1, 0.1, 0.1],
                         [0.1, 0.7, 0.1, 0.1],
                         [0.1, 0.1, 0.7, 0.1],
                         [0.1, 0.1, 0.1, 0.7]])
    t = uniform_transition(k, p)
    assert_row_stochastic(t, k)
    np.testing.assert_allclose(t, expected, atol=1e-12)


def test_symmetric_matches_hand_built_and_real_rate():
    k, p = 5, 0.5
    t = symmetric_transition(k, p)
    assert_row_stochastic(t, k)
    expected = np.full((k, k), 0.1)
    np.fill_diagonal(expected, 0.6)
    np.testing.assert_allclose(t, expected, atol=1e-12)
    # real corruption rate = off-diagonal mass = p (K-1) / K
    np.testing.assert_allclose(1.0 - np.diag(t), p * (k - 1) / k, atol=1e-12)


def test_pairflip_wraps_last_class_to_zero():
    t = pairflip_transition(3, 0.25)
    assert_row_stochastic(t, 3)
    expected = np.array([[0.75, 0.25, 0.0],
                         [0.0, 0.75, 0.25],
                         [0.25, 0.0, 0.75]])
    np.testing.assert_allclose(t, expected, atol=1e-12)


def test_pair_cifar10_maps_exactly_the_four_pairs():
    p = 0.4
    t = pair_cifar10_transition(p)
    assert_row_stochastic(t, 10)
    expected = np.eye(10)
    for src, dst in [(9, 1), (2, 0), (4, 7), (3, 5)]:
        expected[src, src] = 1 - p
        expected[src, dst] = p
    np.testing.assert_allclose(t, expected, atol=1e-12)
    assert np.count_nonzero(t - np.diag(np.diag(t))) == 4
    # real rate with balanced classes: 0.4 p
    assert np.mean(1 - np.diag(t)) == pytest.approx(0.4 * p)


def test_pair_cifar10_rejects_other_class_counts():
    with pytest.raises(LimitlabError, match="10"):
        pair_cifar10_transition(0.2, num_classes=100)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_extreme_rates_are_valid(p):
    for make in (uniform_transition, symmetric_transition, pairflip_transition):
        assert_row_stochastic(make(6, p), 6)


# ---------------------------------------------------------------- corruption

def test_corrupt_is_deterministic_given_seed():
    y = np.arange(1000) % 10
    t = uniform_transition(10, 0.5)
    a, b = corrupt_labels(y, t, seed=1), corrupt_labels(y, t, seed=1)
    c = corrupt_labels(y, t, seed=2)
    assert a.dtype == np.int64 and a.shape == y.shape
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_corrupt_keeps_shape():
    y = (np.arange(24) % 3).reshape(4, 6).astype(np.int32)
    out = corrupt_labels(y, uniform_transition(3, 0.5), seed=0)
    assert out.shape == (4, 6) and out.dtype == np.int64


def test_identity_leaves_labels_unchanged():
    y = np.random.default_rng(0).integers(0, 7, size=5000)
    np.testing.assert_array_equal(corrupt_labels(y, parse_noise("none", 7), seed=3), y)


@pytest.mark.parametrize("spec, expected_rate", [("uniform:0.8", 0.8), ("symmetric:0.5", 0.45)])
def test_realised_rate_matches_expected(spec, expected_rate):
    n, k = 200_000, 10
    y = np.random.default_rng(0).integers(0, k, size=n)
    noisy = corrupt_labels(y, parse_noise(spec, k), seed=11)
    se = math.sqrt(expected_rate * (1 - expected_rate) / n)
    assert abs(realised_rate(y, noisy) - expected_rate) < 4 * se


def test_uniform_moves_labels_evenly_to_other_classes():
    n, k = 200_000, 10
    y = np.zeros(n, dtype=np.int64)
    noisy = corrupt_labels(y, uniform_transition(k, 0.8), seed=5)
    freq = np.bincount(noisy, minlength=k) / n
    se = math.sqrt((0.8 / 9) * (1 - 0.8 / 9) / n)
    np.testing.assert_allclose(freq[1:], 0.8 / 9, atol=4 * se)


def test_empirical_transition_matches_matrix():
    k, n = 5, 200_000
    rng = np.random.default_rng(42)
    t = rng.dirichlet(np.ones(k), size=k)
    t[1, 3] = 0.0  # a zero entry that must never be drawn
    t[1] /= t[1].sum()
    y = rng.integers(0, k, size=n)
    noisy = corrupt_labels(y, t, seed=7)
    counts = np.zeros((k, k))
    np.add.at(counts, (y, noisy), 1)
    n_y = counts.sum(axis=1, keepdims=True)
    emp = counts / n_y
    tol = 4 * np.sqrt(t * (1 - t) / n_y) + 1e-12
    assert np.all(np.abs(emp - t) <= tol), np.abs(emp - t) / tol
    assert counts[1, 3] == 0


def test_roundoff_guard_never_lands_on_zero_probability_class(monkeypatch):
    # Row 0 sums to 1 - 5e-7 (accepted, within 1e-6) and ends in zeros; a draw u just below 1
    # lies above its cumulative sum and must still give class 1, not a zero-probability class.
    # A draw u = 0 must not pick a leading zero-probability class either (row 1).
    t = np.array([[0.5, 0.4999995, 0.0, 0.0],
                  [0.0, 1.0, 0.0, 0.0],
                  [0.0, 0.0, 1.0, 0.0],
                  [0.0, 0.0, 0.0, 1.0]])

    class ExtremeDraws:
        def random(self, size):
            return np.array([1.0 - 1e-12, 0.0, 0.0, 1.0 - 1e-12])[:size]

    monkeypatch.setattr(noise.np.random, "default_rng", lambda seed: ExtremeDraws())
    out = corrupt_labels(np.array([0, 0, 1, 3]), t, seed=0)
    np.testing.assert_array_equal(out, [1, 0, 1, 3])


@pytest.mark.parametrize("labels", [np.array([0, 1, 10]), np.array([-1, 0]), np.array([0.0, 1.0])])
def test_corrupt_rejects_bad_labels(labels):
    with pytest.raises(LimitlabError, match="labels"):
        corrupt_labels(labels, uniform_transition(10, 0.2), seed=0)


def test_realised_rate_counts_differences():
    assert realised_rate(np.array([0, 1, 2, 3]), np.array([0, 2, 2, 0])) == 0.5
    with pytest.raises(LimitlabError, match="shape"):
        realised_rate(np.array([0, 1]), np.array([0, 1, 2]))


# ---------------------------------------------------------------- entropy and Fano bound

def test_entropy_uniform_08_k10_is_3258_bits():
    p, k = 0.8, 10
    independent = -(1 - p) * math.log2(1 - p) - (k - 1) * (p / (k - 1)) * math.log2(p / (k - 1))
    got = noisy_label_entropy_bits(uniform_transition(k, p), np.full(k, 1 / k))
    assert got == pytest.approx(independent, abs=1e-12)
    assert round(got, 3) == 3.258
    # independent of class frequencies for uniform noise; counts are normalised
    assert noisy_label_entropy_bits(uniform_transition(k, p), np.arange(1, k + 1)) == pytest.approx(got)


def test_entropy_pair_noise_weights_by_class_frequency():
    pi = np.full(10, 0.05)
    pi[[9, 2, 4, 3]] = [0.2, 0.1, 0.1, 0.1]
    pi /= pi.sum()
    expected = (pi[9] + pi[2] + pi[4] + pi[3]) * hb(0.3)
    assert noisy_label_entropy_bits(pair_cifar10_transition(0.3), pi) == pytest.approx(expected)
    assert noisy_label_entropy_bits(np.eye(4), np.ones(4)) == 0.0


@pytest.mark.parametrize("r", [0.1, 0.3, 0.5])
def test_fano_bound_matches_formula(r):
    h = 3.258
    expected = h - hb(r) - r * math.log2(9)
    assert expected > 0
    assert fano_information_lower_bound(r, 10, h) == pytest.approx(expected)


def test_fano_bound_edges_and_clipping():
    h = noisy_label_entropy_bits(uniform_transition(10, 0.8), np.ones(10))
    assert fano_information_lower_bound(0.0, 10, h) == pytest.approx(h)  # r = 0: the whole entropy
    assert fano_information_lower_bound(1.0, 10, h) == pytest.approx(h - math.log2(9))  # r = 1
    # r = p: a model that fits only the clean labels needs no noise information
    assert fano_information_lower_bound(0.8, 10, h) == pytest.approx(0.0, abs=1e-9)
    assert fano_information_lower_bound(0.9, 10, h) == 0.0  # negative -> clipped
    assert fano_information_lower_bound(1.0, 2, 0.5) == 0.5  # K = 2: log2(1) = 0
    with pytest.raises(ValueError):
        fano_information_lower_bound(1.2, 10, h)


# ---------------------------------------------------------------- loading matrices

def test_load_transition_npy_csv_txt(tmp_path):
    t = pairflip_transition(4, 0.3)
    np.save(tmp_path / "t.npy", t)
    np.savetxt(tmp_path / "t.csv", t, delimiter=",")
    np.savetxt(tmp_path / "t.txt", t)
    for name in ("t.npy", "t.csv", "t.txt"):
        np.testing.assert_allclose(load_transition(tmp_path / name, 4), t, atol=1e-15)
    np.testing.assert_allclose(parse_noise(f"matrix:{tmp_path / 't.csv'}", 4), t, atol=1e-15)


@pytest.mark.parametrize("matrix, message", [
    (np.eye(3), "shape"),
    (np.ones((4, 3)) / 3, "shape"),
    (np.array([[1.2, -0.2, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "negative"),
    (np.full((4, 4), 0.3), "sum to 1"),
    (np.where(np.eye(4) > 0, np.nan, 0.0), "NaN"),
])
def test_load_transition_rejects_bad_matrices(tmp_path, matrix, message):
    path = tmp_path / "bad.csv"
    np.savetxt(path, matrix, delimiter=",")
    with pytest.raises(LimitlabError, match=message):
        load_transition(path, 4)


def test_load_transition_missing_and_garbage_files(tmp_path):
    with pytest.raises(LimitlabError, match="does not exist"):
        load_transition(tmp_path / "nope.npy", 4)
    (tmp_path / "garbage.npy").write_bytes(b"\x00\x01 not a numpy file")
    (tmp_path / "garbage.csv").write_text("0.5,0.5\nhello,world\n")
    (tmp_path / "ragged.txt").write_text("1 0 0\n0 1\n")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(LimitlabError, match="empty"):
        load_transition(tmp_path / "empty.txt", 3)
    for name in ("garbage.npy", "garbage.csv", "ragged.txt"):
        with pytest.raises(LimitlabError, match="could not read"):
            load_transition(tmp_path / name, 3)


# ---------------------------------------------------------------- parse_noise

@pytest.mark.parametrize("spec, make", [
    ("uniform:0.8", lambda k: uniform_transition(k, 0.8)),
    ("symmetric:0.5", lambda k: symmetric_transition(k, 0.5)),
    ("pairflip:0.45", lambda k: pairflip_transition(k, 0.45)),
    ("pair-cifar10:0.4", lambda k: pair_cifar10_transition(0.4, k)),
    ("none", lambda k: np.eye(k)),
])
def test_parse_noise_builds_each_model(spec, make):
    np.testing.assert_array_equal(parse_noise(spec, 10), make(10))


@pytest.mark.parametrize("spec, message", [
    ("gaussian:0.3", "unknown noise model 'gaussian'.*uniform:p, symmetric:p"),
    ("uniform:-0.1", r"-0.1 .*outside \[0, 1\]"),
    ("uniform:1.5", r"1.5 .*outside \[0, 1\]"),
    ("symmetric:nan", r"outside \[0, 1\]"),
    ("pairflip:abc", "'abc' .*not a number"),
    ("uniform", "missing a rate"),
    ("uniform:", "missing a rate"),
    ("matrix:", "missing a file"),
    ("none:0.2", "takes no argument"),
])
def test_parse_noise_errors_name_the_problem(spec, message):
    with pytest.raises(LimitlabError, match=message):
        parse_noise(spec, 10)
