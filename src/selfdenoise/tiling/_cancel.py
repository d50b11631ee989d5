"""Cancelling a prediction from another thread (torch-free)."""

from __future__ import annotations


class PredictionCancelled(RuntimeError):
    """Raised by tiled prediction when its ``cancel`` event is set or callable returns True."""


def is_cancelled(cancel) -> bool:
    """True when ``cancel`` (None, a ``threading.Event`` or a callable) asks to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())
