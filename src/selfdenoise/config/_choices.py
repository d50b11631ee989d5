"""Choices, defaults and value checks shared by the settings (torch-free)."""

from __future__ import annotations

from typing import Any

from .._errors import SelfDenoiseError
from ..registry import method_names

METHODS = method_names()
"""Training objectives, in the order the front ends list them (from :mod:`selfdenoise.registry`)."""

DEFAULT_METHOD = "neighbor2neighbor"
"""The method used when none is named: the fastest to converge on a CPU (issue #6,
``docs/benchmarks.md``); Noise2Same and the blind-spot methods stay one argument away."""

BATCH_SIZE_2D = 16
"""Batch size of the measured CPU recipe in 2D (sixteen 64x64 patches)."""

BATCH_SIZE_3D = 4
"""Batch size of the measured CPU recipe in 3D: four 16x64x64 patches are already 4x the
voxels of sixteen 64x64 ones, and more, smaller steps converge faster on a CPU."""


def cpu_batch(ndim: int) -> int:
    """Batch of the measured CPU recipe: what an unset batch becomes on the CPU and MPS."""
    return BATCH_SIZE_3D if ndim == 3 else BATCH_SIZE_2D


DEMO_METHODS = (DEFAULT_METHOD, "noise2same")
"""Methods ``selfdenoise demo`` trains, one after the other."""

MASK_MODES = ("stratified", "bernoulli", "grid")
FILLS = ("gaussian", "donut", "uniform", "median", "zero")
SCHEDULES = ("cosine", "onecycle", "step", "plateau", "constant")
NORMALISATIONS = ("meanstd", "percentile")
BLENDS = ("crop", "hann")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")
NEIGHBOUR_PAIRS = ("adjacent", "diagonal")
"""Neighbor2Neighbor's pixel pairs (the method module's ``NEIGHBOUR_PAIRS``, kept here
without importing torch)."""

ARCHITECTURES = {"unet": "selfdenoise.nets.unet:UNet"}
"""Network architectures by name: ``'module:class'`` of each (imported when a network is
built, so this table stays torch-free). Another architecture is one more entry."""

MAX_BASE_CHANNELS = 256
"""Largest ``base_channels`` a configuration accepts (the parameter count is bounded too)."""


def check_device_name(value: Any) -> str:
    """Return ``value`` if it names a device (one of :data:`DEVICES`, or ``cuda:N`` for GPU N).

    Raises
    ------
    SelfDenoiseError
        For any other value.
    """
    kind, _, index = str(value).partition(":")
    if isinstance(value, str) and (value in DEVICES or (kind == "cuda" and index.isdigit())):
        return value
    raise SelfDenoiseError(
        f"device must be one of {', '.join(DEVICES)} or cuda:N (GPU N); got {value!r}."
    )


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SelfDenoiseError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def _check_positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise SelfDenoiseError(f"{name} must be a positive number; got {value!r}.")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SelfDenoiseError(f"{name} must be an integer; got {value!r}.")


def _check_shape(name: str, value: tuple[int, ...] | None) -> None:
    if value is None:
        return
    if not all(isinstance(v, int) and v > 0 for v in value):
        raise SelfDenoiseError(f"{name} must be positive integers, e.g. 64,64; got {value!r}.")


def check_lambda_inv(value: Any) -> None:
    """Raise unless ``value`` is a finite number >= 0 (Noise2Same's invariance weight)."""
    _check_weight("lambda_inv", value)


def check_regulariser_weight(value: Any) -> None:
    """Raise unless ``value`` is a finite number >= 0 (Neighbor2Neighbor's regulariser weight)."""
    _check_weight("regulariser_weight", value)


def _check_weight(name: str, value: Any) -> None:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SelfDenoiseError(f"{name} must be a finite number >= 0; got {value!r}.")
    if value < 0:
        raise SelfDenoiseError(f"{name} must be >= 0; got {value}.")
