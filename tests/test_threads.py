"""limitlab.runtime.machine_threads: the thread policy (free cores, OMP_NUM_THREADS wins)."""

import os

import pytest
import torch

from limitlab import runtime


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


@pytest.mark.parametrize("load, threads", [(0.0, 4), (1.4, 3), (2.6, 1), (3.0, 1), (9.0, 1)])
def test_free_cores(four_cores, monkeypatch, load, threads):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert runtime.machine_threads() == threads


def test_omp_num_threads_wins(four_cores, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtime.machine_threads() == 3


def test_thread_count_restored(four_cores, monkeypatch):
    monkeypatch.setattr(os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    before = torch.get_num_threads()
    with runtime.machine_thread_count():
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
