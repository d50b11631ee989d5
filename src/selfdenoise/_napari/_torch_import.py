"""One thread at a time imports torch and the engine (a process-wide lock).

PyTorch is not safe to import from two threads at once: when the Train widget's device probe
imported it in one worker while another worker (or a later engine import) ran, registering
its operators failed with ``RuntimeError: operator debug_mode_ops::annotate does not exist``.
Every thread-worker job of the widgets calls :func:`ensure_engine` (or :func:`ensure_metrics`)
before it touches the engine, so the first import happens once, on one thread, and the other
jobs wait for it instead of racing it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_IMPORT_LOCK = threading.RLock()
"""Held while torch or an engine module is imported for the first time."""

_loaded: set[str] = set()


@contextmanager
def import_lock() -> Iterator[None]:
    """Hold the process-wide import lock (re-entrant) for a block of first-time imports."""
    with _IMPORT_LOCK:
        yield


def ensure_engine() -> None:
    """Import torch and the engine modules the jobs use, once, under :func:`import_lock`."""
    if "engine" in _loaded:
        return
    with _IMPORT_LOCK:
        if "engine" in _loaded:
            return
        import torch  # noqa: F401  (the first, serialised import)

        from .. import api, device, methods, nets, tiling  # noqa: F401

        _loaded.add("engine")


def ensure_metrics() -> None:
    """Import the metrics package (scipy, scikit-image) once, under :func:`import_lock`."""
    if "metrics" in _loaded:
        return
    with _IMPORT_LOCK:
        from .. import metrics  # noqa: F401

        _loaded.add("metrics")


def engine_loaded() -> bool:
    """True once :func:`ensure_engine` has finished in this process."""
    return "engine" in _loaded
