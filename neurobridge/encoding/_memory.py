"""Memory planning: how many targets to process at once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from ..core import cpu_threads

logger = logging.getLogger("neurobridge")

# On CPU, batches that keep the per-alpha residual block in cache are as fast as huge ones and
# use far less memory; this caps the batch even when plenty of memory is free.
_CPU_MAX_BATCH = 4096
_CUDA_MAX_BATCH = 65536


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device`` in bytes (CUDA: ``mem_get_info``; CPU: available RAM)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with the environment
        try:
            with open("/proc/meminfo") as fh:
                for line in fh:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return 4 * 1024**3


def target_batch_size(
    n_targets: int,
    bytes_per_target: int,
    device: torch.device,
    *,
    n_targets_batch: int | None = None,
    fraction: float = 0.25,
) -> int:
    """Number of targets per batch so that a batch uses at most ``fraction`` of free memory.

    Parameters
    ----------
    n_targets : int
    bytes_per_target : int
        Working memory one target needs inside the batch loop.
    device : torch.device
    n_targets_batch : int, optional
        Explicit batch size (wins over the plan).
    fraction : float
        Share of the free memory a batch may use.

    Examples
    --------
    >>> target_batch_size(10, 1000, torch.device("cpu"))
    10
    """
    if n_targets_batch is not None:
        if n_targets_batch < 1:
            raise ValueError(f"n_targets_batch must be >= 1, got {n_targets_batch}")
        return int(min(n_targets_batch, max(n_targets, 1)))
    budget = available_bytes(device) * fraction
    cap = _CUDA_MAX_BATCH if device.type == "cuda" else _CPU_MAX_BATCH
    size = int(max(1, min(cap, budget // max(bytes_per_target, 1))))
    if size < 16:
        logger.warning("little free memory: processing %d targets at a time", size)
    return int(min(size, max(n_targets, 1)))


# Below this many floating-point operations a solve runs single-threaded on CPU: small problems are a
# stream of short kernels, and on a shared or oversubscribed CPU (other processes, pytest-xdist workers)
# every multi-threaded kernel waits for a second core; a layer sweep of 160 stimuli x 384 units took 17.9 s
# with 2 threads and 1.6 s with one on a busy 2-core machine. Large solves are GEMM-bound and keep all threads.
SMALL_WORK_FLOPS = 2e10


@contextlib.contextmanager
def threads_for(work_flops: float, device: torch.device) -> Iterator[None]:
    """Run the enclosed CPU work single-threaded when it is small (see ``SMALL_WORK_FLOPS``).

    Examples
    --------
    >>> with threads_for(1e6, torch.device("cpu")):
    ...     torch.get_num_threads()
    1
    """
    if work_flops >= SMALL_WORK_FLOPS:
        yield
        return
    with cpu_threads(1, device):
        yield
