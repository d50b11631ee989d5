"""Input checks and normalisation (numpy only; patches are cut by :mod:`selfdenoise.patches`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._errors import SelfDenoiseError
from .axes import Layout, to_canonical
from .config import NORMALISATIONS, NormalisationConfig

MIN_SPATIAL_SIZE = 8
"""Smallest side (pixels) an image may have along Y and X to be trained on or denoised."""


def check_image(array, axes: str, name: str = "image") -> Layout:
    """Check that an array can be denoised and return its :class:`~selfdenoise.axes.Layout`.

    Only cheap checks run here (shape, dtype, size); :func:`check_finite` scans values.

    Raises
    ------
    SelfDenoiseError
        Wrong number of dimensions, unsupported dtype, an empty or too small image.
    """
    shape = tuple(np.shape(array))
    dtype = _dtype_of(array)
    if dtype.kind not in "uif":
        raise SelfDenoiseError(
            f"{name} has data type {dtype}; convert it to integers or floating point first."
        )
    if len(shape) < 2:
        raise SelfDenoiseError(f"{name} has {len(shape)} dimension(s); an image needs Y and X.")
    layout = Layout(axes, shape)
    if 0 in shape:
        raise SelfDenoiseError(f"{name} is empty (shape {shape}).")
    too_small = [s for s in layout.spatial_shape[-2:] if s < MIN_SPATIAL_SIZE]
    if too_small:
        raise SelfDenoiseError(
            f"{name} is too small ({'x'.join(map(str, layout.spatial_shape))}); "
            f"Y and X must be at least {MIN_SPATIAL_SIZE} pixels."
        )
    return layout


def _dtype_of(array) -> np.dtype:
    """The data type of ``array`` without reading its values.

    Lazy arrays (dask, zarr, memmap) say their dtype; only plain sequences are converted.
    (A ``getattr(array, "dtype", np.asarray(array).dtype)`` would evaluate its default first,
    and so read a whole dask or zarr stack into memory just to learn its dtype.)
    """
    dtype = getattr(array, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(array).dtype


def check_finite(array: np.ndarray, name: str = "image") -> None:
    """Raise a one-line :class:`SelfDenoiseError` if ``array`` holds NaN or infinity."""
    if _dtype_of(array).kind == "f" and not np.isfinite(array).all():
        raise SelfDenoiseError(
            f"{name} contains NaN or infinite values; replace them (e.g. with 0 or the median) first."
        )


@dataclass
class Normaliser:
    """Per-channel affine intensity normalisation stored with a model.

    ``normalised = (raw - offset[c]) / scale[c]`` and back. With ``kind='meanstd'`` offset and
    scale are the mean and standard deviation of the training data; with ``'percentile'`` they
    are the low percentile and the distance to the high one.

    Parameters
    ----------
    kind : str
        ``'meanstd'`` or ``'percentile'``.
    offset, scale : list of float
        One entry per channel (a single entry applies to all channels).
    channels_jointly : bool
        If False, the channel of a canonical sample is read from the layout bound with
        :meth:`bind`, because channels are folded into samples.
    """

    kind: str
    offset: list[float]
    scale: list[float]
    channels_jointly: bool = True
    _layout: Layout | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(
        cls,
        arrays: Sequence[np.ndarray],
        layouts: Sequence[Layout],
        config: NormalisationConfig,
    ) -> Normaliser:
        """Compute statistics over all training arrays, per channel of the user's data."""
        channels_jointly = layouts[0].channels_jointly
        per_channel: list[list[np.ndarray]] = []
        for array, layout in zip(arrays, layouts, strict=True):
            canonical, _ = to_canonical(np.asarray(array), layout.axes, channels_jointly=True)
            for c in range(canonical.shape[1]):
                if len(per_channel) <= c:
                    per_channel.append([])
                per_channel[c].append(_subsample(canonical[:, c]))
        offsets, scales = [], []
        for values in per_channel:
            flat = np.concatenate([v.ravel() for v in values]).astype(np.float64)
            if config.kind == "meanstd":
                offset, scale = float(flat.mean()), float(flat.std())
            else:
                low, high = np.percentile(flat, [config.low_percentile, config.high_percentile])
                offset, scale = float(low), float(high - low)
            if not scale > 0:
                raise SelfDenoiseError(
                    "the training image is constant; there is nothing to denoise in it."
                )
            offsets.append(offset)
            scales.append(scale)
        return cls(config.kind, offsets, scales, channels_jointly)

    def bind(self, layout: Layout) -> Normaliser:
        """Return a copy that knows how canonical samples of ``layout`` map to channels."""
        return Normaliser(self.kind, self.offset, self.scale, self.channels_jointly, layout)

    def _stats(self, sample: int) -> tuple[np.ndarray, np.ndarray]:
        offset = np.asarray(self.offset, np.float32)
        scale = np.asarray(self.scale, np.float32)
        if not self.channels_jointly and len(offset) > 1:
            if self._layout is None:
                raise RuntimeError("bind() the normaliser to a layout first")
            channel = self._layout.sample_position(sample).get("C", 0)
            return offset[channel : channel + 1], scale[channel : channel + 1]
        return offset, scale

    def forward(
        self, block: np.ndarray, sample: int = 0, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Normalise a ``(C, *spatial)`` block of canonical sample ``sample`` (float32).

        With ``out`` (a float32 array of the block's shape, which may be ``block`` itself)
        the result is written there and no temporary array is made.
        """
        offset, scale = self._stats(sample)
        shape = (-1,) + (1,) * (block.ndim - 1)
        if out is None:
            return (np.asarray(block, np.float32) - offset.reshape(shape)) / scale.reshape(shape)
        np.subtract(block, offset.reshape(shape), out=out, casting="unsafe")
        return np.divide(out, scale.reshape(shape), out=out)

    def inverse(
        self, block: np.ndarray, sample: int = 0, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Undo :meth:`forward` (``out`` as there)."""
        offset, scale = self._stats(sample)
        shape = (-1,) + (1,) * (block.ndim - 1)
        if out is None:
            return np.asarray(block, np.float32) * scale.reshape(shape) + offset.reshape(shape)
        np.multiply(block, scale.reshape(shape), out=out, casting="unsafe")
        return np.add(out, offset.reshape(shape), out=out)

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return {
            "kind": self.kind,
            "offset": list(self.offset),
            "scale": list(self.scale),
            "channels_jointly": self.channels_jointly,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Normaliser:
        """Inverse of :meth:`to_dict`, checked as strictly as a new normaliser.

        Raises
        ------
        SelfDenoiseError
            Not a dictionary, an unknown kind, or offsets/scales that are not lists of the same
            length of finite numbers with every scale > 0.
        """
        if not isinstance(data, dict):
            raise SelfDenoiseError("the normaliser must be a dictionary of kind, offset and scale.")
        kind = data.get("kind")
        if kind not in NORMALISATIONS:
            raise SelfDenoiseError(
                f"normaliser kind must be one of {', '.join(NORMALISATIONS)}; got {kind!r}."
            )
        offset, scale = _numbers(data.get("offset"), "offset"), _numbers(data.get("scale"), "scale")
        if len(offset) != len(scale):
            raise SelfDenoiseError(
                f"the normaliser has {len(offset)} offset(s) but {len(scale)} scale(s)."
            )
        if not all(v > 0 for v in scale):
            raise SelfDenoiseError(f"normaliser scales must be > 0; got {scale}.")
        return cls(kind, offset, scale, bool(data.get("channels_jointly", True)))


def _numbers(values, name: str) -> list[float]:
    """``values`` as a non-empty list of finite floats (one-line error otherwise)."""
    if not isinstance(values, list) or not values:
        raise SelfDenoiseError(f"the normaliser {name} must be a non-empty list of numbers.")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise SelfDenoiseError(f"the normaliser {name} must hold numbers; got {values!r}.")
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise SelfDenoiseError(f"the normaliser {name} must be finite; got {numbers}.")
    return numbers


def _subsample(array: np.ndarray, max_values: int = 4_000_000) -> np.ndarray:
    """A strided subset of at most about ``max_values`` values (statistics of huge stacks)."""
    step = max(1, math.ceil(array.size / max_values))
    return array.ravel()[::step] if step > 1 else array
