"""Which pixels a blind-spot mask hides, as fixed-size candidate sets (torch; private).

Each mode of :mod:`selfdenoise.masking` chooses a fixed number of candidate positions per
sample with a validity flag (see that module's notes for the stratified law); nothing here
depends on the data's values, so no shape does and nothing waits for the device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._errors import SelfDenoiseError
from .config import MaskingConfig


class _Picks(NamedTuple):
    """Candidate positions: linear spatial ``index`` ``(B, K)`` and ``valid`` flags ``(B, K)``.

    ``index`` of an invalid candidate is any position inside the image (never used).
    ``every_pixel``: the candidates are all pixels in order (``index[b] = arange(N)``).
    """

    index: torch.Tensor
    valid: torch.Tensor
    every_pixel: bool = False


def _split_shape(shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    if len(shape) not in (4, 5):
        raise SelfDenoiseError(
            f"masks need a (B, C, *spatial) shape with 2 or 3 spatial axes; got {tuple(shape)}."
        )
    return int(shape[0]), tuple(int(n) for n in shape[2:])


def _draw_picks(
    config: MaskingConfig,
    batch: int,
    spatial: tuple[int, ...],
    generator: torch.Generator,
    grid_phase: int | None,
) -> _Picks:
    """The chosen pixels of ``config.mode``, on the generator's device."""
    if config.mode == "stratified":
        return _stratified_picks(batch, spatial, config.fraction, generator)
    if config.mode == "bernoulli":
        draws = torch.rand((batch, *spatial), generator=generator, device=generator.device)
        valid = (draws < config.fraction).reshape(batch, -1)
        index = torch.arange(valid.shape[1], device=generator.device).expand(batch, -1)
        return _Picks(index, valid, every_pixel=True)
    if config.mode == "grid":
        return _grid_picks(batch, spatial, config.grid_period, generator, grid_phase)
    raise SelfDenoiseError(f"unknown masking mode {config.mode!r}.")


def _stratified_picks(
    batch: int, spatial: tuple[int, ...], fraction: float, generator: torch.Generator
) -> _Picks:
    """One uniform pixel per cell of side ``(1/fraction)**(1/d)``; see the module notes."""
    ndim, device = len(spatial), generator.device
    side = (1.0 / fraction) ** (1.0 / ndim)
    n_cells = [math.ceil(length / side) + 1 for length in spatial]
    phases = _rand((batch, ndim), generator) * side
    picks = _rand((batch, *n_cells, ndim), generator)
    index = torch.zeros((batch, *n_cells), dtype=torch.long, device=device)
    inside = torch.ones((batch, *n_cells), dtype=torch.bool, device=device)
    for axis, length in enumerate(spatial):
        steps = torch.arange(n_cells[axis] + 1, dtype=torch.float64, device=device)
        edges = torch.ceil(steps * side - phases[:, axis : axis + 1])  # (B, cells + 1)
        view = [batch] + [1] * ndim
        view[1 + axis] = n_cells[axis]
        starts = edges[:, :-1].reshape(view)
        lengths = (edges[:, 1:] - edges[:, :-1]).reshape(view)
        offset = torch.minimum(torch.floor(picks[..., axis] * lengths), lengths - 1)
        coordinate = (starts + offset).long()
        inside &= (coordinate >= 0) & (coordinate < length)
        index = index * length + coordinate.clamp(0, length - 1)
    return _Picks(index.reshape(batch, -1), inside.reshape(batch, -1))


def _grid_picks(
    batch: int,
    spatial: tuple[int, ...],
    period: int,
    generator: torch.Generator,
    grid_phase: int | None,
) -> _Picks:
    """Noise2Self grid: pixel ``i`` is masked when ``i_a % period == digit_a(phase)``.

    ``phase`` in ``[0, period**d)`` is written in base ``period``, one digit per axis
    (first axis most significant), so the ``period**d`` phases cover each pixel once.
    """
    ndim, device = len(spatial), generator.device
    n_phases = period**ndim
    if grid_phase is None:
        phases = torch.randint(n_phases, (batch,), generator=generator, device=device)
    elif 0 <= grid_phase < n_phases:
        phases = torch.full((batch,), int(grid_phase), device=device)
    else:
        raise SelfDenoiseError(f"grid_phase must be in [0, {n_phases}); got {grid_phase}.")
    index = torch.zeros([batch] + [1] * ndim, dtype=torch.long, device=device)
    valid = torch.ones([batch] + [1] * ndim, dtype=torch.bool, device=device)
    for axis, length in enumerate(spatial):
        digit = (phases // period ** (ndim - 1 - axis)) % period  # (B,)
        points = -(-length // period)
        view = [batch] + [1] * ndim
        view[1 + axis] = points
        steps = torch.arange(points, device=device) * period
        coordinate = (digit[:, None] + steps).reshape(view)
        valid = valid & (coordinate < length)
        index = index * length + coordinate.clamp(max=length - 1)
    return _Picks(index.reshape(batch, -1), valid.reshape(batch, -1))


def _line_picks(picks: _Picks, spatial: tuple[int, ...], axis: int, span: int) -> _Picks:
    """The structN2V lines through ``picks`` along spatial ``axis`` (-1 = X), border-clipped."""
    dim = len(spatial) + axis
    stride, length = math.prod(spatial[dim + 1 :]), spatial[dim]
    shifts = torch.arange(-(span // 2), span - span // 2, device=picks.index.device)
    position = (picks.index // stride % length)[..., None] + shifts  # (B, K, span)
    valid = picks.valid[..., None] & (position >= 0) & (position < length)
    index = picks.index[..., None] + shifts * stride
    index = torch.where(valid, index, picks.index[..., None])
    return _Picks(index.flatten(1), valid.flatten(1))


def _dense(picks: _Picks, spatial: tuple[int, ...]) -> torch.Tensor:
    """Boolean ``(B, 1, *spatial)`` mask of the valid picks (invalid ones go to a spare slot)."""
    batch, count = picks.index.shape[0], math.prod(spatial)
    mask = torch.zeros((batch, count + 1), dtype=torch.bool, device=picks.index.device)
    mask.scatter_(1, torch.where(picks.valid, picks.index, count), True)
    return mask[:, :count].reshape(batch, 1, *spatial)


def _rand(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform [0, 1) float64 draws on the generator's device."""
    return torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)


def _move(picks: _Picks, device: torch.device) -> _Picks:
    return _Picks(_to(picks.index, device), _to(picks.valid, device), picks.every_pixel)


def _to(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; host-to-GPU copies go through pinned memory, asynchronously."""
    if tensor.device.type == "cpu" and torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
