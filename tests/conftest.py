"""Shared fixtures for the napari widget tests (napari is imported lazily, inside fixtures)."""

from __future__ import annotations

import os

import pytest

# One torch (OpenMP) thread in the test process and in the CLIs and scripts the tests start,
# unless the caller set OMP_NUM_THREADS: on a busy 2-core machine torch's default of one
# thread per core spins against the other processes and trains many times slower (a
# 100-step quality test took 280 s with two threads under load, 24 s with one: issue 17).
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_TRAINING = {
    "patch_size": "32",
    "batch_size": 4,
    "epochs": 2,
    "steps_per_epoch": 3,
    "base_channels": 8,
    "unet_depth": 2,
    "device": "cpu",
    "seed": 0,
}
"""Train-widget field values that train in about a second on a CPU."""


@pytest.fixture
def clean_session():
    """Empty the registry of session models before and after a test."""
    from selfdenoise._napari._session import SESSION_MODELS

    SESSION_MODELS.clear()
    yield SESSION_MODELS
    SESSION_MODELS.clear()


@pytest.fixture
def torch_single_thread():
    """Train on one CPU thread during a test (restored after it).

    On a shared machine with few cores, torch's default of one thread per core spins
    against other processes and trains many times slower than with a single thread.
    torch is imported through the widgets' own serialised import
    (:func:`selfdenoise._napari._torch_import.ensure_engine`), the path the thread workers
    take; the cold start of a fresh napari (nothing imported) is tested in a subprocess by
    ``tests/test_napari_cold_start.py``.
    """
    from selfdenoise._napari._torch_import import ensure_engine

    ensure_engine()
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def notifications():
    """Collect napari notifications (message, severity) dispatched during a test."""
    from napari.utils.notifications import notification_manager

    received: list[tuple[str, str]] = []

    def record(event) -> None:
        received.append((str(event.message), str(event.severity)))

    notification_manager.notification_ready.connect(record)
    yield received
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def make_tiny():
    """A function that gives a Train widget a budget of a few steps on a tiny network."""

    def apply(widget, **overrides) -> None:
        for name, value in {**TINY_TRAINING, **overrides}.items():
            getattr(widget, name).value = value

    return apply
