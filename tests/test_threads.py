"""limitlab.runtime.machine_threads: the thread policy (every core, OMP_NUM_THREADS wins)."""

import os

import pytest
import torch

from limitlab import runtime


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


@pytest.mark.parametrize("load", [0.0, 1.4, 3.0, 9.0])
def test_every_core_whatever_the_load(four_cores, monkeypatch, load):
    """The count does not follow the load: results must not depend on what else is running."""
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert runtime.machine_threads() == 4


def test_omp_num_threads_wins(four_cores, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.machine_threads() == 3


def test_thread_count_restored(four_cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    with runtime.machine_thread_count():
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_start_runtime_applies_the_policy_unless_a_count_is_pinned(four_cores, monkeypatch):
    from limitlab.config import Config

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    before = torch.get_num_threads()
    try:
        with runtime.pinned_threads(1):
            runtime.start_runtime(Config(device="cpu"))
            assert torch.get_num_threads() == 1  # the demo's one thread stays
        assert torch.get_num_threads() == before
        runtime.start_runtime(Config(device="cpu"))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
