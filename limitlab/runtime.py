"""Where a run executes: its device, precision, and its rank among DDP processes started by torchrun
(NCCL on GPUs, gloo on CPU)."""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import LimitlabError


@dataclass
class Runtime:
    """Where this process runs: its device, and its rank among ``world`` DDP processes."""

    device: torch.device
    rank: int = 0
    world: int = 1
    precision: str = "fp32"  # "bf16": autocast on CUDA
    distributed: bool = False  # started by torchrun: DDP and collectives, even for one process (a smoke test)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over processes (identity without DDP)."""
        if self.distributed:
            dist.all_reduce(t)
        return t

    def gather_strided(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Reassemble an [N] result computed as shards ``rank::world`` on each process."""
        if not self.distributed:
            return local
        size = math.ceil(n / self.world)
        padded = torch.zeros(size, dtype=local.dtype, device=local.device)
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.stack(parts, 1).reshape(-1)[:n]

    def barrier(self):
        if self.distributed:
            dist.barrier()


def machine_threads() -> int:
    """The CPU threads for torch when the user chose none: ``OMP_NUM_THREADS`` when set, else every
    core this process may use. Fixed per machine, so that a run's numbers do not depend on what else
    happens to be running (a thread count chosen from the load changes the last bits of the results
    from one fit to the next). The price of a busy machine is paid by the OpenMP wait policy instead:
    the ``limitlab`` command sets ``OMP_WAIT_POLICY=PASSIVE``, with which 2 threads on a loaded
    machine cost no more than 1 (benchmarks/RESULTS.md, "Threads")."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def machine_thread_count():
    """Run the block with :func:`machine_threads` torch threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(machine_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)


_pinned: list[int] = []  # thread counts pinned by pinned_threads(), innermost last


@contextlib.contextmanager
def pinned_threads(n: int):
    """Run the block with ``n`` torch threads, which :func:`start_runtime` keeps (the demo pins one
    thread: its numbers then hold on every machine), then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    _pinned.append(n)
    try:
        yield
    finally:
        _pinned.pop()
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device``: "auto" is CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LimitlabError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LimitlabError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``--precision``: "auto" is bf16 autocast on CUDA and fp32 elsewhere."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def start_runtime(config) -> Runtime:
    """One process, or one of WORLD_SIZE processes started by torchrun (DDP: NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1 or dist.is_torchelastic_launched()
    device = resolve_device(config.device)
    if distributed:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    precision = resolve_precision(config.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    rank = dist.get_rank() if distributed else 0
    if device.type == "cpu" and not distributed and not _pinned:  # a pinned count stays
        torch.set_num_threads(machine_threads())
    return Runtime(device, rank, world, precision, distributed)
