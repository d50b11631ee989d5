"""Small pieces shared by the image format modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import SelfDenoiseError
from ..axes import validate_axes

_MICRO = ("µm", "μm", "\\u00B5m", "micron", "microns", "micrometer", "micrometre")


@dataclass(frozen=True)
class Read:
    data: Any
    axes: str | None = None
    scale: tuple[float, ...] | None = None
    unit: str | None = None


def normal_unit(unit: Any) -> str | None:
    if not isinstance(unit, str) or not unit.strip():
        return None
    unit = unit.strip()
    return "um" if unit.lower() in _MICRO or unit in _MICRO else unit


def valid_axes_or_none(axes: str, ndim: int) -> str | None:
    try:
        return validate_axes(axes, ndim)
    except SelfDenoiseError:
        return None
