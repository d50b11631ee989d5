"""Host-side work on large tiles split over threads (torch-free).

A GPU predicts a large tile in a fraction of the time one CPU thread needs to read, check,
normalise and later store its voxels. NumPy releases the GIL in those array operations, so
cutting a tile into bands of rows and handling the bands on several threads speeds up the
host side of a prediction about as many times as there are cores free (up to
:data:`HOST_THREADS`). Only in-memory arrays are cut this way: bands of an on-disk array
(zarr, dask) would decode the same chunks more than once.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HOST_THREADS = max(1, min(8, os.cpu_count() or 1))
"""Threads that share the host work of one batch of tiles."""

BAND_VOXELS = 2**21
"""Fewest voxels in one band: below that, the threads' overhead outweighs the gain."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def bands(shape: Sequence[int], threads: int | None = None) -> list[slice]:
    """Cut the first axis of a block of ``shape`` into at most ``threads`` (default
    :data:`HOST_THREADS`) bands of rows, each of at least :data:`BAND_VOXELS` voxels (one
    band for small blocks)."""
    threads = threads or HOST_THREADS
    rows = int(shape[0])
    count = max(1, min(threads, rows, math.prod(shape) // BAND_VOXELS))
    edges = np.linspace(0, rows, count + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def run_bands(work: Callable[[slice], None], parts: list[slice]) -> None:
    """Call ``work(band)`` for every band, on the host threads when there are several."""
    if len(parts) == 1:
        work(parts[0])
        return
    futures = [_host_pool().submit(work, part) for part in parts]
    for future in futures:
        future.result()


def is_in_memory(array) -> bool:
    """True for NumPy arrays (memory-mapped files included), which bands may share."""
    return isinstance(array, np.ndarray)


def _host_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(HOST_THREADS, thread_name_prefix="selfdenoise-host")
        return _pool
