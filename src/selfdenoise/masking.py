"""Blind-spot masks and fills for masked self-supervised training (torch).

A training step hides a set ``J`` of pixels from the network: :func:`make_mask` chooses
them and :func:`apply_fill` replaces their values; :func:`mask_and_fill` does both for a
training step. Masks have shape ``(B, 1, *spatial)`` and are shared by all channels;
images are ``(B, C, *spatial)`` with 2 or 3 spatial axes.

Random numbers are drawn from the caller's :class:`torch.Generator` on that generator's
device (a CPU generator gives the same masks on every device); only fixed-size index
tensors travel to the data's device.

Fixed shapes, no host-device synchronisation
--------------------------------------------
Every mode chooses its pixels as a fixed number of candidate positions per sample, each
with a validity flag: one per stratified cell, one per grid point, every pixel for
Bernoulli masks. Fills are gathered at those positions and scattered back with invalid
candidates sent to a spare slot, so no shape depends on the data and no function here
reads a device value on the host (no ``nonzero``, ``item``, boolean-mask indexing).
Random fills (Gaussian values, uniform neighbour indices) draw one value per candidate, so
:func:`mask_and_fill` draws the same masks as :func:`make_masks` and fills them with the
same law as :func:`apply_fill` (equal up to rounding for the deterministic fills), not the
same random values. Where structN2V lines overlap, one of the candidates' draws is kept.

Stratified sampling
-------------------
The spatial domain is cut into cells of real-valued side

.. math:: t = (1 / p)^{1/d},

with ``p`` the masked fraction and ``d`` the number of spatial axes. Along each axis the
cell edges are :math:`\\lceil k t - u \\rceil` for a random phase :math:`u \\sim U[0, t)`,
so cells are :math:`\\lfloor t \\rfloor` or :math:`\\lceil t \\rceil` pixels long and
average exactly ``t``. One pixel is drawn uniformly in every cell; cells cut by the image
border keep their pixel only when it falls inside. Every pixel is therefore masked with
probability exactly ``p`` on average over the phase, in 2D and 3D and for any patch size,
and every cell inside the image holds exactly one masked pixel. (Rounding the box side to
an integer instead would miss ``p`` by up to 25 % in 3D; reusing the 2D box side in 3D, as
the published Noise2Same code does, masks about 10x too few voxels.)
"""

from __future__ import annotations

import math

import torch

from ._errors import SelfDenoiseError
from ._mask_neighbours import (
    _channels_first,
    _donut_everywhere,
    _donut_weights,
    _folds_back,
    _linear_offsets,
    _median,
    _padded_positions,
    _reflect_pad,
    _take,
    _unravel,
    _window_offsets,
)
from ._mask_picks import _dense, _draw_picks, _line_picks, _move, _Picks, _split_shape, _to
from .config import MaskingConfig

__all__ = ["apply_fill", "extend_struct_mask", "make_mask", "make_masks", "mask_and_fill"]


def make_mask(
    config: MaskingConfig,
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device | str | None = None,
    grid_phase: int | None = None,
) -> torch.Tensor:
    """Choose the pixels hidden from the network in one training step.

    Parameters
    ----------
    config : MaskingConfig
        ``mode``, ``fraction``, ``grid_period``, ``struct_axis`` and ``struct_span`` are used.
    shape : tuple of int
        Shape ``(B, C, *spatial)`` of the batch, with 2 or 3 spatial axes.
    generator : torch.Generator
        Source of randomness (CPU generator recommended, for reproducibility).
    device : torch.device or str, optional
        Device of the returned mask (default CPU).
    grid_phase : int, optional
        Phase in ``[0, grid_period**d)`` for ``mode='grid'``; random per sample when None.

    Returns
    -------
    torch.Tensor
        Boolean mask of shape ``(B, 1, *spatial)``, True where pixels are hidden. With
        ``struct_axis`` set, each chosen pixel is extended to a line (see
        :func:`extend_struct_mask`).

    Notes
    -----
    Expected masked fraction before any structN2V extension: ``fraction`` for
    ``'stratified'`` (see the module notes) and ``'bernoulli'``; :math:`1/P^d` for
    ``'grid'`` with period ``P``, independently of ``fraction``.
    """
    return make_masks(config, shape, generator, device=device, grid_phase=grid_phase)[1]


def make_masks(
    config: MaskingConfig,
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device | str | None = None,
    grid_phase: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`make_mask`, but also return the chosen pixels before structN2V lines.

    Returns
    -------
    centres : torch.Tensor
        Boolean ``(B, 1, *spatial)``: the chosen pixels, where masked losses are scored.
    hidden : torch.Tensor
        Boolean ``(B, 1, *spatial)``: all pixels to fill. Equal to ``centres`` (the same
        tensor) unless ``config.struct_axis`` is set.
    """
    batch, spatial = _split_shape(shape)
    picks = _draw_picks(config, batch, spatial, generator, grid_phase)
    target = torch.device(device if device is not None else "cpu")
    centres = _dense(_move(picks, target), spatial)
    if config.struct_axis is None:
        return centres, centres
    return centres, extend_struct_mask(centres, config.struct_axis, config.struct_span)


def mask_and_fill(
    x: torch.Tensor,
    config: MaskingConfig,
    generator: torch.Generator,
    grid_phase: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask and fill a training batch with fixed-shape operations only.

    The masks of ``make_masks(config, x.shape, generator, x.device, grid_phase)``, filled
    with the law of :func:`apply_fill` (see the module notes), with fills computed only at
    the chosen pixels and nothing waiting for the device.

    Parameters
    ----------
    x : torch.Tensor
        Batch ``(B, C, *spatial)``.
    config : MaskingConfig
        Mask and fill settings (see :func:`make_mask` and :func:`apply_fill`).
    generator : torch.Generator
        Source of randomness for the mask and the fill.
    grid_phase : int, optional
        Phase for grid masks (random per sample when None).

    Returns
    -------
    filled : torch.Tensor
        ``x`` with the hidden pixels replaced.
    centres, hidden : torch.Tensor
        Boolean ``(B, 1, *spatial)`` masks as returned by :func:`make_masks`.
    """
    batch, spatial = _split_shape(tuple(x.shape))
    picks = _draw_picks(config, batch, spatial, generator, grid_phase)
    on_data = _move(picks, x.device)
    centres = _dense(on_data, spatial)
    if config.struct_axis is None:
        return _fill(x, on_data, config, generator), centres, centres
    hidden = extend_struct_mask(centres, config.struct_axis, config.struct_span)
    lines = _line_picks(on_data, spatial, config.struct_axis, config.struct_span)
    return _fill(x, lines, config, generator), centres, hidden


def extend_struct_mask(mask: torch.Tensor, axis: int, span: int) -> torch.Tensor:
    """Extend every masked pixel to a line of ``span`` pixels along a spatial axis (structN2V).

    Parameters
    ----------
    mask : torch.Tensor
        Boolean ``(B, 1, *spatial)`` mask.
    axis : int
        Spatial axis counted from the end: -1 = X, -2 = Y, -3 = Z.
    span : int
        Line length. The line covers offsets ``-(span // 2) .. span - 1 - span // 2``
        (centred for odd ``span``), clipped at the image border.

    Returns
    -------
    torch.Tensor
        Boolean mask of the same shape.
    """
    ndim = mask.ndim - 2
    if not -ndim <= axis <= -1:
        raise SelfDenoiseError(f"struct_axis {axis} does not exist in {ndim}D data.")
    dim = mask.ndim + axis
    length = mask.shape[dim]
    extended = mask.clone()
    for shift in range(-(span // 2), span - span // 2):
        if shift == 0 or abs(shift) >= length:
            continue
        kept = length - abs(shift)
        source = mask.narrow(dim, max(-shift, 0), kept)
        target = extended.narrow(dim, max(shift, 0), kept)
        target |= source
    return extended


def apply_fill(
    x: torch.Tensor,
    mask: torch.Tensor,
    config: MaskingConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Replace the masked pixels of a batch; the other pixels are unchanged.

    Fills (``config.fill``), computed from the unmasked input ``x``:

    - ``'gaussian'``: :math:`\\mathcal{N}(0, \\sigma^2)` with ``sigma = config.fill_sigma``;
    - ``'donut'``: :math:`\\sum_o w_o x_{i+o}` over the 3x3(x3) neighbours with
      :math:`w_o \\propto 1 / \\lVert o \\rVert^2`, normalised to sum 1 (in 2D the kernel
      ``[[.5, 1, .5], [1, 0, 1], [.5, 1, .5]] / 6``);
    - ``'uniform'``: the value of one neighbour drawn uniformly from the window of side
      ``config.window`` minus its centre (Noise2Void);
    - ``'median'``: the median of that window minus its centre (N2V2; the mean of the two
      middle values for an even count, as :func:`numpy.median`);
    - ``'zero'``: 0.

    Neighbours outside the image are reflected (``reflect`` padding, edge not repeated); a
    window neighbour whose reflection lands back on the pixel itself (windows of 5 and more,
    near the border) is replaced by its mirror image through the pixel.
    The same neighbour position is used for every channel. With ``config.struct_axis`` set,
    neighbour fills skip the whole line along that axis through the pixel, so no value from
    the masked line (correlated noise) is copied back into it.

    Parameters
    ----------
    x : torch.Tensor
        Batch ``(B, C, *spatial)``.
    mask : torch.Tensor
        Boolean ``(B, 1, *spatial)`` mask from :func:`make_mask`.
    config : MaskingConfig
        ``fill``, ``fill_sigma``, ``window`` and ``struct_axis`` are used.
    generator : torch.Generator
        Source of randomness for ``'gaussian'`` and ``'uniform'``.

    Returns
    -------
    torch.Tensor
        A new tensor like ``x`` with the masked pixels replaced.

    Notes
    -----
    Any mask is accepted, so the fill is computed at every pixel and kept where ``mask``
    is set; training steps use :func:`mask_and_fill`, which computes it only where needed.
    """
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise SelfDenoiseError(
            f"mask shape {tuple(mask.shape)} does not fit batch {tuple(x.shape)}."
        )
    batch, count = x.shape[0], math.prod(x.shape[2:])
    index = torch.arange(count, device=x.device).expand(batch, count)
    valid = mask.to(x.device).reshape(batch, count)
    return _fill(x, _Picks(index, valid, every_pixel=True), config, generator)


# --- fills ------------------------------------------------------------------------------------


def _fill(
    x: torch.Tensor,
    picks: _Picks,
    config: MaskingConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """``x`` with the fill written at the valid ``picks`` (on ``x``'s device).

    Works channels first, ``(C, B, ...)``. Random fills draw one value per candidate,
    valid or not, on the generator's device.
    """
    batch, channels, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    ndim, count = len(spatial), math.prod(spatial)
    line_axis = None if config.struct_axis is None else ndim + config.struct_axis
    if line_axis is not None and line_axis < 0:
        raise SelfDenoiseError(f"struct_axis {config.struct_axis} does not exist in {ndim}D data.")
    if config.fill == "zero":
        values = x.new_zeros((channels, *picks.index.shape))
    elif config.fill == "gaussian":
        shape = (channels, *picks.index.shape)
        noise = torch.randn(shape, generator=generator, device=generator.device)
        values = config.fill_sigma * _to(noise, x.device).to(x.dtype)
    elif config.fill in ("donut", "median", "uniform"):
        values = _neighbour_fill(x, picks, config, line_axis, generator)
    else:
        raise SelfDenoiseError(f"unknown mask fill {config.fill!r}.")
    first = x.transpose(0, 1).reshape(channels, batch, count)
    spare = torch.cat([first, first.new_zeros((channels, batch, 1))], dim=2)
    target = torch.where(picks.valid, picks.index, count).expand(channels, -1, -1)
    spare.scatter_(2, target, values.to(x.dtype))
    filled = spare[..., :count].reshape(channels, batch, *spatial).transpose(0, 1)
    return torch.empty_like(x).copy_(filled)


def _neighbour_fill(
    x: torch.Tensor,
    picks: _Picks,
    config: MaskingConfig,
    line_axis: int | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """Donut, median or uniform fill ``(C, B, K)`` at the candidates ``picks``.

    A window neighbour whose reflection at the border lands back on the pixel (or on its
    structN2V line) is replaced by its mirror image through the pixel, so no fill copies
    the hidden value. A donut fill of every pixel (Bernoulli masks, :func:`apply_fill`) is
    a convolution.
    """
    if config.fill == "donut" and picks.every_pixel:
        return _donut_everywhere(x, line_axis)
    index = picks.index
    spatial = tuple(x.shape[2:])
    radius = 1 if config.fill == "donut" else config.window // 2
    offsets = _window_offsets(len(spatial), 2 * radius + 1, line_axis, x.device)  # (M, ndim)
    coordinates = _unravel(index, spatial)
    padded = _reflect_pad(x, radius)
    shape = tuple(padded.shape[2:])
    padded = _channels_first(padded)
    centres = _padded_positions(coordinates, shape, radius)  # (B, K)
    if config.fill == "uniform":
        draws = torch.randint(
            offsets.shape[0], index.shape, generator=generator, device=generator.device
        )
        chosen = offsets[_to(draws, x.device)]  # (B, K, ndim)
        folds = _folds_back(coordinates, chosen, spatial, line_axis, radius)
        steps = _linear_offsets(chosen, shape)
        return _take(padded, centres + torch.where(folds, -steps, steps))
    columns = [coordinate[..., None] for coordinate in coordinates]
    folds = _folds_back(columns, offsets, spatial, line_axis, radius)  # (B, K, M)
    steps = _linear_offsets(offsets, shape)
    neighbours = _take(padded, centres[..., None] + torch.where(folds, -steps, steps))
    if config.fill == "median":
        return _median(neighbours, dim=-1)
    return neighbours @ _donut_weights(offsets, x.dtype)
