"""Neighbourhoods of masked pixels for the neighbour fills (torch; private).

Windows are built by arithmetic on the data's device, the batch is reflect-padded once and
neighbours are read with flat index tensors of fixed shape.
"""

from __future__ import annotations

import torch


def _window_offsets(
    ndim: int, window: int, line_axis: int | None = None, device: torch.device | None = None
) -> torch.Tensor:
    """Offsets ``(M, ndim)`` of a cubic window of side ``window`` without its centre.

    With ``line_axis``, the offsets along that axis only (the structN2V line) are left out
    too. Built by arithmetic on ``device``: the window codes of the off-line axes, with the
    centre code ``(window**free - 1) / 2`` skipped, times every position along the line.
    """
    radius = window // 2
    free = ndim if line_axis is None else ndim - 1
    count = window**free - 1
    codes = torch.arange(count, device=device)
    codes = codes + (codes >= count // 2).long()
    digits = [(codes // window ** (free - 1 - a)) % window - radius for a in range(free)]
    if line_axis is None:
        return torch.stack(digits, dim=1)
    along = torch.arange(-radius, radius + 1, device=device)
    columns = [digit[:, None].expand(count, window) for digit in digits]
    columns.insert(line_axis, along[None, :].expand(count, window))
    return torch.stack(columns, dim=-1).reshape(-1, ndim)


def _reflect(position: torch.Tensor, length: int, reach: int | None = None) -> torch.Tensor:
    """Map indices into ``[0, length)`` by reflection about the edge pixels.

    ``reach``: how far outside ``[0, length)`` positions can be; within one reflection
    (``reach < length``) the modulo is skipped.
    """
    if length == 1:
        return torch.zeros_like(position)
    period = 2 * (length - 1)
    position = position.abs()
    if reach is None or reach >= length:
        position = position % period
    return torch.where(position >= length, period - position, position)


def _reflect_pad(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``x`` ``(B, C, *spatial)`` reflect-padded by ``radius`` on each spatial axis.

    Any image size works (repeated reflection for axes shorter than ``radius``).
    """
    padded = x
    for axis, length in enumerate(x.shape[2:]):
        rows = _reflect(torch.arange(-radius, length + radius, device=x.device), length)
        padded = padded.index_select(2 + axis, rows)
    return padded


def _channels_first(batch: torch.Tensor) -> torch.Tensor:
    """``(B, C, *spatial)`` as ``(C, B * prod(spatial))``."""
    return batch.transpose(0, 1).reshape(batch.shape[1], -1)


def _donut_weights(offsets: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Donut weights ``1 / |o|^2`` of the window ``offsets``, normalised to sum 1."""
    weights = 1.0 / (offsets**2).sum(dim=1).to(dtype)
    return weights / weights.sum()


def _donut_everywhere(x: torch.Tensor, line_axis: int | None) -> torch.Tensor:
    """Donut fill of every pixel, ``(C, B, N)``: a per-channel 3x3(x3) convolution.

    The same weights as :func:`_donut_weights` (without the structN2V line) applied to the
    reflect-padded batch.
    """
    ndim, channels = x.ndim - 2, x.shape[1]
    offsets = _window_offsets(ndim, 3, line_axis, x.device)
    cells = _linear_offsets(offsets + 1, (3,) * ndim)
    kernel = torch.zeros(3**ndim, dtype=x.dtype, device=x.device)
    kernel = kernel.index_put((cells,), _donut_weights(offsets, x.dtype))
    kernel = kernel.reshape(1, 1, *(3,) * ndim).expand(channels, 1, *(3,) * ndim)
    convolve = torch.nn.functional.conv2d if ndim == 2 else torch.nn.functional.conv3d
    smooth = convolve(_reflect_pad(x, 1), kernel, groups=channels)  # (B, C, *spatial)
    return smooth.transpose(0, 1).reshape(channels, x.shape[0], -1)


def _unravel(index: torch.Tensor, spatial: tuple[int, ...]) -> list[torch.Tensor]:
    """Per-axis coordinates of the linear spatial positions ``index``."""
    coordinates = []
    for length in reversed(spatial):
        coordinates.insert(0, index % length)
        index = index // length
    return coordinates


def _padded_positions(
    coordinates: list[torch.Tensor], shape: tuple[int, ...], radius: int
) -> torch.Tensor:
    """Positions ``(B, K)`` in the flattened padded batch of pixels at ``coordinates``."""
    linear = torch.arange(coordinates[0].shape[0], device=coordinates[0].device)[:, None]
    for coordinate, length in zip(coordinates, shape, strict=True):
        linear = linear * length + coordinate + radius
    return linear


def _folds_back(
    coordinates: list[torch.Tensor],
    offsets: torch.Tensor,
    spatial: tuple[int, ...],
    line_axis: int | None,
    radius: int,
) -> torch.Tensor:
    """True where ``coordinates + offsets``, reflected, is the pixel or on its line."""
    folds = None
    for axis, length in enumerate(spatial):
        if axis != line_axis:
            moved = _reflect(coordinates[axis] + offsets[..., axis], length, radius)
            same = moved == coordinates[axis]
            folds = same if folds is None else folds & same
    assert folds is not None
    return folds


def _linear_offsets(offsets: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Offsets ``(..., ndim)`` as steps in a flattened array of spatial ``shape``."""
    steps = torch.zeros_like(offsets[..., 0])
    for axis, length in enumerate(shape):
        steps = steps * length + offsets[..., axis]
    return steps


def _take(padded: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Values ``(C, *positions.shape)`` of the channels-first padded batch."""
    return padded.index_select(1, positions.flatten()).reshape(-1, *positions.shape)


def _median(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Median along ``dim``; the mean of the two middle values for an even count."""
    ordered = values.sort(dim=dim).values
    count = values.shape[dim]
    upper = ordered.narrow(dim, count // 2, 1)
    if count % 2:
        return upper.squeeze(dim)
    lower = ordered.narrow(dim, count // 2 - 1, 1)
    return ((lower + upper) / 2).squeeze(dim)
