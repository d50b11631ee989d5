"""Units, pixel sizes and chunks as both OME writers check them (private part of
:mod:`selfdenoise.ome`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._errors import SelfDenoiseError
from .axes import validate_axes

_UNIT_ALIASES = {
    "µm": "micrometer",  # micro sign
    "μm": "micrometer",  # Greek mu
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "\\u00b5m": "micrometer",  # how ImageJ sometimes stores µm
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "å": "angstrom",
    "pm": "picometer",
    "in": "inch",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "µs": "microsecond",
    "min": "minute",
    "h": "hour",
}
_OME_SYMBOLS = {
    "micrometer": "µm",
    "nanometer": "nm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
    "angstrom": "Å",
    "picometer": "pm",
    "inch": "in",
    "second": "s",
    "millisecond": "ms",
    "microsecond": "µs",
    "minute": "min",
    "hour": "h",
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def normalize_unit(unit: Any) -> str | None:
    """NGFF name of a length or time unit (``'µm'`` -> ``'micrometer'``); None for no unit.

    Unknown names are returned lower-cased; ``'pixel'`` and empty strings mean no unit.
    """
    if unit is None:
        return None
    text = str(unit).strip()
    if not text or text.lower() in ("pixel", "pixels", "none", "1"):
        return None
    return _UNIT_ALIASES.get(text, _UNIT_ALIASES.get(text.lower(), text.lower()))


def _units_per_axis(units: Any, axes: str) -> dict[str, str | None]:
    if units is None:
        return {}
    if isinstance(units, str):  # one spatial unit
        return {a: normalize_unit(units) for a in axes if a in "ZYX"}
    units = list(units)
    if len(units) != len(axes):
        raise SelfDenoiseError(f"units has {len(units)} values but the axes are {axes!r}.")
    return {a: normalize_unit(u) for a, u in zip(axes, units, strict=True)}


def _default_chunks(shape: Sequence[int], axes: str) -> tuple[int, ...]:
    limits = {"X": 256, "Y": 256, "Z": 32}
    return tuple(max(1, min(size, limits.get(a, 1))) for a, size in zip(axes, shape, strict=True))


def _checked(array: Any, axes: str, scale: Any, chunks: Any) -> tuple[str, tuple, tuple]:
    ndim = len(array.shape)
    axes = validate_axes(axes, ndim)
    scale = tuple(float(v) for v in scale) if scale is not None else (1.0,) * ndim
    if len(scale) != ndim:
        raise SelfDenoiseError(f"scale has {len(scale)} values but the image has {ndim} axes.")
    if any(not v > 0 for v in scale):
        raise SelfDenoiseError(f"scale {scale} must be positive pixel sizes.")
    chunks = tuple(int(c) for c in chunks) if chunks is not None else None
    if chunks is not None and len(chunks) != ndim:
        raise SelfDenoiseError(f"chunks has {len(chunks)} values but the image has {ndim} axes.")
    return axes, scale, chunks or _default_chunks(array.shape, axes)
