"""Axes strings and the canonical layout the engine works in.

Users describe their data with an axes string such as ``'YX'``, ``'ZYX'``, ``'TYX'``,
``'CYX'``, ``'SZYX'`` or ``'TCZYX'``:

- ``S`` and ``T`` are sample axes: independent images, stacked into the batch;
- ``C`` is the channel axis: channels are denoised jointly by one network, or each on its
  own (``channels_jointly=False``, then channels become samples);
- ``Z``, ``Y``, ``X`` are spatial; ``Z`` makes the model 3D.

The engine works in the canonical layout ``(N, C, *spatial)`` with spatial axes in ``ZYX``
order. :class:`Layout` maps between the two without loading data, so tiled prediction can
read one block of a memory-mapped, zarr or dask array at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import SelfDenoiseError

SPATIAL_AXES = "ZYX"
SAMPLE_AXES = "ST"
CHANNEL_AXIS = "C"
VALID_AXES = SAMPLE_AXES + CHANNEL_AXIS + SPATIAL_AXES


def validate_axes(axes: str, ndim: int | None = None) -> str:
    """Check an axes string and return it upper-cased.

    Parameters
    ----------
    axes : str
        Letters from ``STCZYX``, each at most once, including ``Y`` and ``X``.
    ndim : int, optional
        Number of array dimensions the string must describe.

    Returns
    -------
    str
        The upper-cased axes string.

    Raises
    ------
    SelfDenoiseError
        If a letter is unknown or repeated, Y or X is missing, or the length does not match.
    """
    if not isinstance(axes, str) or not axes:
        raise SelfDenoiseError("axes must be a string such as 'YX', 'ZYX' or 'TYX'.")
    axes = axes.upper()
    unknown = sorted(set(axes) - set(VALID_AXES))
    if unknown:
        raise SelfDenoiseError(
            f"axes {axes!r} has unknown letter(s) {''.join(unknown)}; use only S, T, C, Z, Y, X."
        )
    if len(set(axes)) != len(axes):
        raise SelfDenoiseError(f"axes {axes!r} repeats a letter; each axis may appear once.")
    if "Y" not in axes or "X" not in axes:
        raise SelfDenoiseError(f"axes {axes!r} must contain Y and X.")
    if ndim is not None and len(axes) != ndim:
        raise SelfDenoiseError(
            f"axes {axes!r} has {len(axes)} letters but the image has {ndim} dimensions; "
            "give one letter per dimension (e.g. 'ZYX' for a 3D stack)."
        )
    return axes


@dataclass(frozen=True)
class ModelAxesErrors:
    """The messages of :func:`axes_for_model`, worded for the caller's kind of image.

    ``dimensions`` may use ``{ndim}`` and ``{model_axes}``.
    """

    dimensions: str
    all_sample_axes: str
    needs_z: str


def axes_for_model(
    axes: str | None,
    ndim: int,
    model_axes: str,
    model_ndim: int,
    errors: ModelAxesErrors,
) -> str:
    """The axes an image of ``ndim`` dimensions is read with by a 2D or 3D model.

    ``axes=None`` means the model's axes, with a leading ``S`` when the image has one more
    dimension. A 2D model works on ``Z`` data slice by slice: ``Z`` becomes ``S``, or ``T``
    when ``S`` is taken. A 3D model needs a ``Z`` axis.

    Parameters
    ----------
    axes : str or None
        The image's axes, or None for the model's.
    ndim : int
        Number of dimensions of the image.
    model_axes : str
        Axes the model was trained on.
    model_ndim : int
        Spatial dimensions of the model (2 or 3).
    errors : ModelAxesErrors
        What to say when the image does not fit.

    Returns
    -------
    str
        Validated axes, with ``Z`` renamed for a 2D model.
    """
    if axes is None:
        if ndim == len(model_axes):
            axes = model_axes
        elif ndim == len(model_axes) + 1 and "S" not in model_axes:
            axes = "S" + model_axes
        else:
            raise SelfDenoiseError(errors.dimensions.format(ndim=ndim, model_axes=model_axes))
    axes = validate_axes(axes, ndim)
    if model_ndim == 2 and "Z" in axes:
        free = next((a for a in SAMPLE_AXES if a not in axes), None)
        if free is None:
            raise SelfDenoiseError(errors.all_sample_axes)
        axes = axes.replace("Z", free)
    if model_ndim == 3 and "Z" not in axes:
        raise SelfDenoiseError(errors.needs_z)
    return axes


def guess_axes(shape: Sequence[int], rgb: bool = False) -> str:
    """Guess an axes string for an array shape, as napari users lay data out.

    2D -> ``YX``; 3D -> ``ZYX`` (``YXC`` when ``rgb``); 4D -> ``TZYX`` (or ``CZYX`` when
    the first axis has at most 4 entries); 5D -> ``TCZYX``. The guess is a starting point
    that the user can edit.
    """
    ndim = len(shape)
    if rgb:
        return {3: "YXC", 4: "ZYXC"}.get(ndim, "YXC")
    if ndim == 2:
        return "YX"
    if ndim == 3:
        return "ZYX"
    if ndim == 4:
        return "CZYX" if shape[0] <= 4 else "TZYX"
    if ndim == 5:
        return "TCZYX"
    raise SelfDenoiseError(f"cannot guess axes for a {ndim}-dimensional image; give them.")


@dataclass(frozen=True)
class Layout:
    """Where each axis of a user's array goes in the canonical ``(N, C, *spatial)`` layout.

    Parameters
    ----------
    axes : str
        Axes of the user's array.
    shape : tuple of int
        Shape of the user's array.
    channels_jointly : bool
        If False, channels are treated as extra samples of a one-channel image.
    """

    axes: str
    shape: tuple[int, ...]
    channels_jointly: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", validate_axes(self.axes, len(self.shape)))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @property
    def spatial_axes(self) -> str:
        """Spatial axes present, in ZYX order."""
        return "".join(a for a in SPATIAL_AXES if a in self.axes)

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spatial_axes)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the spatial axes, in ZYX order."""
        return tuple(self.shape[self.axes.index(a)] for a in self.spatial_axes)

    @property
    def sample_axes(self) -> str:
        """Axes folded into N, in the order they appear (C included when not joint)."""
        folded = SAMPLE_AXES if self.channels_jointly else SAMPLE_AXES + CHANNEL_AXIS
        return "".join(a for a in self.axes if a in folded)

    @property
    def n_channels(self) -> int:
        """Channels the network sees."""
        if CHANNEL_AXIS in self.axes and self.channels_jointly:
            return self.shape[self.axes.index(CHANNEL_AXIS)]
        return 1

    @property
    def n_samples(self) -> int:
        """Number of canonical samples N."""
        return math.prod(self.shape[self.axes.index(a)] for a in self.sample_axes)

    @property
    def canonical_shape(self) -> tuple[int, ...]:
        """``(N, C, *spatial)``."""
        return (self.n_samples, self.n_channels, *self.spatial_shape)

    def _canonical_order(self) -> list[int]:
        order = [self.axes.index(a) for a in self.sample_axes]
        if CHANNEL_AXIS in self.axes and self.channels_jointly:
            order.append(self.axes.index(CHANNEL_AXIS))
        order += [self.axes.index(a) for a in self.spatial_axes]
        return order

    def sample_position(self, sample: int) -> dict[str, int]:
        """Index along each folded axis of canonical sample ``sample``."""
        sizes = [self.shape[self.axes.index(a)] for a in self.sample_axes]
        position = np.unravel_index(sample, sizes) if sizes else ()
        return {a: int(i) for a, i in zip(self.sample_axes, position, strict=True)}

    def block_index(self, sample: int, spatial: Sequence[slice] | None = None) -> tuple:
        """Index into the user's array that reads one sample (all channels) over ``spatial``.

        The block read with it is turned into ``(C, *spatial)`` by :meth:`block_to_canonical`.
        """
        position = self.sample_position(sample)
        spatial = list(spatial) if spatial is not None else [slice(None)] * self.ndim
        index: list[int | slice] = []
        for axis in self.axes:
            if axis in position:
                index.append(position[axis])
            elif axis in SPATIAL_AXES:
                index.append(spatial[self.spatial_axes.index(axis)])
            else:
                index.append(slice(None))
        return tuple(index)

    def _block_axes(self) -> str:
        folded = set(self.sample_axes)
        return "".join(a for a in self.axes if a not in folded)

    def block_to_canonical(self, block: np.ndarray) -> np.ndarray:
        """Reorder a block read with :meth:`block_index` to ``(C, *spatial)``."""
        block_axes = self._block_axes()
        target = (CHANNEL_AXIS if CHANNEL_AXIS in block_axes else "") + self.spatial_axes
        out = np.transpose(block, [block_axes.index(a) for a in target])
        return out if CHANNEL_AXIS in block_axes else out[np.newaxis]

    def read_block(
        self, array: Any, sample: int, spatial: Sequence[slice] | None = None
    ) -> np.ndarray:
        """One sample (all channels) of ``array`` over ``spatial``, as float32 ``(C, *spatial)``."""
        block = np.asarray(array[self.block_index(sample, spatial)], dtype=np.float32)
        return self.block_to_canonical(block)

    def canonical_to_block(self, block: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`block_to_canonical`: ``(C, *spatial)`` to the user's order."""
        block_axes = self._block_axes()
        source = (CHANNEL_AXIS if CHANNEL_AXIS in block_axes else "") + self.spatial_axes
        if CHANNEL_AXIS not in block_axes:
            block = block[0]
        return np.transpose(block, [source.index(a) for a in block_axes])

    def samples(self) -> Iterator[int]:
        """Canonical sample indices."""
        return iter(range(self.n_samples))


def to_canonical(
    array: np.ndarray, axes: str, channels_jointly: bool = True
) -> tuple[np.ndarray, Layout]:
    """View (or copy) an in-memory array in the canonical ``(N, C, *spatial)`` layout.

    Parameters
    ----------
    array : ndarray
        The user's image.
    axes : str
        Its axes string.
    channels_jointly : bool
        Keep channels together (True) or fold them into samples (False).

    Returns
    -------
    canonical : ndarray
        ``(N, C, *spatial)``.
    layout : Layout
        What :func:`from_canonical` needs to undo it.
    """
    layout = Layout(axes, tuple(np.shape(array)), channels_jointly)
    moved = np.transpose(np.asarray(array), layout._canonical_order())
    return moved.reshape(layout.canonical_shape), layout


def from_canonical(canonical: np.ndarray, layout: Layout) -> np.ndarray:
    """Undo :func:`to_canonical`: ``(N, C, *spatial)`` back to the user's axes."""
    order = layout._canonical_order()
    moved_shape = [layout.shape[i] for i in order]
    restored = np.reshape(canonical, moved_shape)
    return np.transpose(restored, np.argsort(order))
