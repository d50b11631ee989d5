"""Argument types of the ``selfdenoise`` command line: each turns text into a value or a
one-line :class:`argparse.ArgumentTypeError`."""

from __future__ import annotations

import argparse

from .._errors import SelfDenoiseError
from ..config import DEVICES, check_device_name


def int_tuple(text: str) -> tuple[int, ...]:
    """``64,64`` or ``64x64`` as a tuple of integers >= 0."""
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,64; got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 64,64; got {text!r}")
    return values


def positive_int(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}")
    return value


def weight_or_auto(text: str) -> float | str:
    """``'auto'`` or a finite number >= 0 (``lambda_inv``, ``regulariser_weight``)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number >= 0 or 'auto'; got {text!r}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'auto'; got {text!r}")
    return value


DEVICE_CHOICES = ", ".join([*DEVICES, "cuda:N"])


def device_name(text: str) -> str:
    """A device name the engine accepts (``auto``, ``cpu``, ``cuda:1``, ...)."""
    try:
        return check_device_name(text)
    except SelfDenoiseError:
        raise argparse.ArgumentTypeError(
            f"expected one of {DEVICE_CHOICES}; got {text!r}"
        ) from None


def output_dtype(text: str) -> str:
    """``float32``, ``input`` or a numeric numpy type name such as ``uint16``."""
    import numpy as np

    if text in ("float32", "input"):
        return text
    try:
        dtype = np.dtype(text)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "uif":
        raise argparse.ArgumentTypeError(
            f"expected 'float32', 'input' or a numeric type such as uint16; got {text!r}"
        )
    return dtype.name
