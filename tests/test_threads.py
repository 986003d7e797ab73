"""limitlab.runtime.machine_threads: the thread policy (free cores, OMP_NUM_THREADS wins)."""

import os

import pytest
import torch

from limitlab import runtime


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(runtime, "_runnable_others", lambda: 99)  # the load average decides


@pytest.mark.parametrize("load, threads", [(0.0, 4), (1.4, 3), (2.6, 1), (3.0, 1), (9.0, 1)])
def test_free_cores(four_cores, monkeypatch, load, threads):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert runtime.machine_threads() == threads


@pytest.mark.parametrize("load, running, threads", [(1.4, 0, 4), (1.4, 1, 3), (3.0, 2, 2), (0.2, 5, 4)])
def test_the_smaller_of_the_average_and_the_processes_running_now(four_cores, monkeypatch, load, running, threads):
    """An idle machine right after a command (its load still in the 1-minute average) gets every core;
    a momentary burst of other processes with a low average does not take cores either."""
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(runtime, "_runnable_others", lambda: running)
    assert runtime.machine_threads() == threads


def test_runnable_others_reads_proc_loadavg():
    others = runtime._runnable_others()
    assert isinstance(others, int) and others >= 0


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


def test_start_runtime_applies_the_policy_unless_a_count_is_pinned(four_cores, monkeypatch):
    from limitlab.config import Config

    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
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
