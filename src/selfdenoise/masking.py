"""Blind-spot masks and fills for masked self-supervised training (torch).

A training step hides a set ``J`` of pixels from the network: :func:`make_mask` chooses
them and :func:`apply_fill` replaces their values. Masks have shape ``(B, 1, *spatial)``
and are shared by all channels; images are ``(B, C, *spatial)`` with 2 or 3 spatial axes.

Random numbers are drawn on the CPU from the caller's :class:`torch.Generator` (so a seed
gives the same masks on every device) and moved to the data's device afterwards.

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
from .config import MaskingConfig

__all__ = ["apply_fill", "extend_struct_mask", "make_mask", "make_masks"]


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
    if config.mode == "stratified":
        centres = _stratified_mask(batch, spatial, config.fraction, generator)
    elif config.mode == "bernoulli":
        draws = torch.rand((batch, *spatial), generator=generator, device=generator.device)
        centres = draws < config.fraction
    elif config.mode == "grid":
        centres = _grid_mask(batch, spatial, config.grid_period, generator, grid_phase)
    else:
        raise SelfDenoiseError(f"unknown masking mode {config.mode!r}.")
    centres = centres.unsqueeze(1).to(device if device is not None else "cpu")
    if config.struct_axis is None:
        return centres, centres
    return centres, extend_struct_mask(centres, config.struct_axis, config.struct_span)


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

    Neighbours outside the image are reflected (``reflect`` padding, edge not repeated).
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
    """
    ndim = x.ndim - 2
    if mask.shape != (x.shape[0], 1, *x.shape[2:]):
        raise SelfDenoiseError(
            f"mask shape {tuple(mask.shape)} does not fit batch {tuple(x.shape)}."
        )
    line_axis = None if config.struct_axis is None else ndim + config.struct_axis
    if line_axis is not None and line_axis < 0:
        raise SelfDenoiseError(f"struct_axis {config.struct_axis} does not exist in {ndim}D data.")
    coords = torch.stack(torch.nonzero(mask[:, 0], as_tuple=True), dim=1)  # (K, 1 + ndim)
    n_masked, channels = coords.shape[0], x.shape[1]
    if config.fill == "zero":
        values = x.new_zeros((n_masked, channels))
    elif config.fill == "gaussian":
        noise = torch.randn((n_masked, channels), generator=generator, device=generator.device)
        values = config.fill_sigma * noise.to(x.device, x.dtype)
    elif config.fill == "donut":
        offsets, weights = _donut_offsets(ndim, line_axis)
        neighbours = _gather(x, coords, offsets.to(x.device))  # (K, C, M)
        values = neighbours @ weights.to(x.device, x.dtype)
    elif config.fill == "median":
        offsets = _window_offsets(ndim, config.window, line_axis).to(x.device)
        values = _median(_gather(x, coords, offsets), dim=-1)
    elif config.fill == "uniform":
        offsets = _window_offsets(ndim, config.window, line_axis)
        draws = torch.randint(
            len(offsets), (n_masked,), generator=generator, device=generator.device
        )
        chosen = offsets[draws.cpu()].to(x.device)[:, None, :]  # (K, 1, ndim)
        values = _gather(x, coords, chosen)[..., 0]
    else:
        raise SelfDenoiseError(f"unknown mask fill {config.fill!r}.")
    filled = x.clone()
    filled[(coords[:, 0], slice(None), *coords[:, 1:].unbind(1))] = values.to(x.dtype)
    return filled


# --- mask modes ---------------------------------------------------------------------------


def _split_shape(shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    if len(shape) not in (4, 5):
        raise SelfDenoiseError(
            f"masks need a (B, C, *spatial) shape with 2 or 3 spatial axes; got {tuple(shape)}."
        )
    return int(shape[0]), tuple(int(n) for n in shape[2:])


def _stratified_mask(
    batch: int, spatial: tuple[int, ...], fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """One uniform pixel per cell of side ``(1/fraction)**(1/d)``; see the module notes."""
    ndim = len(spatial)
    side = (1.0 / fraction) ** (1.0 / ndim)
    n_cells = [math.ceil(length / side) + 1 for length in spatial]
    phases = _rand((batch, ndim), generator) * side
    picks = _rand((batch, *n_cells, ndim), generator)
    coordinates = []
    inside = torch.ones((batch, *n_cells), dtype=torch.bool)
    for axis, length in enumerate(spatial):
        steps = torch.arange(n_cells[axis] + 1, dtype=torch.float64)
        edges = torch.ceil(steps * side - phases[:, axis : axis + 1])  # (B, cells + 1)
        view = [batch] + [1] * ndim
        view[1 + axis] = n_cells[axis]
        starts = edges[:, :-1].reshape(view)
        lengths = (edges[:, 1:] - edges[:, :-1]).reshape(view)
        offset = torch.minimum(torch.floor(picks[..., axis] * lengths), lengths - 1)
        coordinate = (starts + offset).long()
        inside &= (coordinate >= 0) & (coordinate < length)
        coordinates.append(coordinate.expand(batch, *n_cells))
    sample = torch.arange(batch).reshape([batch] + [1] * ndim).expand(batch, *n_cells)
    mask = torch.zeros((batch, *spatial), dtype=torch.bool)
    mask[(sample[inside], *(c[inside] for c in coordinates))] = True
    return mask


def _grid_mask(
    batch: int,
    spatial: tuple[int, ...],
    period: int,
    generator: torch.Generator,
    grid_phase: int | None,
) -> torch.Tensor:
    """Noise2Self grid: pixel ``i`` is masked when ``i_a % period == digit_a(phase)``.

    ``phase`` in ``[0, period**d)`` is written in base ``period``, one digit per axis
    (first axis most significant), so the ``period**d`` phases cover each pixel once.
    """
    ndim = len(spatial)
    n_phases = period**ndim
    if grid_phase is None:
        phases = torch.randint(n_phases, (batch,), generator=generator, device=generator.device)
        phases = phases.cpu()
    elif 0 <= grid_phase < n_phases:
        phases = torch.full((batch,), int(grid_phase))
    else:
        raise SelfDenoiseError(f"grid_phase must be in [0, {n_phases}); got {grid_phase}.")
    mask = torch.ones((batch, *spatial), dtype=torch.bool)
    for axis, length in enumerate(spatial):
        digit = (phases // period ** (ndim - 1 - axis)) % period  # (B,)
        view = [1] * (ndim + 1)
        view[1 + axis] = length
        residue = (torch.arange(length) % period).reshape(view)
        mask &= residue == digit.reshape([batch] + [1] * ndim)
    return mask


def _rand(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Uniform [0, 1) float64 draws, returned on the CPU."""
    return torch.rand(
        shape, generator=generator, device=generator.device, dtype=torch.float64
    ).cpu()


# --- neighbourhoods ---------------------------------------------------------------------------


def _window_offsets(ndim: int, window: int, line_axis: int | None = None) -> torch.Tensor:
    """Offsets ``(M, ndim)`` of a cubic window of side ``window`` without its centre.

    With ``line_axis``, the offsets along that axis only (the structN2V line) are left out too.
    """
    radius = window // 2
    span = torch.arange(-radius, radius + 1)
    offsets = torch.stack(torch.meshgrid(*[span] * ndim, indexing="ij"), dim=-1).reshape(-1, ndim)
    off_axis = offsets != 0
    if line_axis is not None:
        off_axis[:, line_axis] = False
    return offsets[off_axis.any(dim=1)]


def _donut_offsets(ndim: int, line_axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """3x3(x3) neighbours and weights ``1 / |o|^2`` normalised to sum 1."""
    offsets = _window_offsets(ndim, 3, line_axis)
    weights = 1.0 / (offsets**2).sum(dim=1).double()
    return offsets, (weights / weights.sum()).float()


def _reflect(position: torch.Tensor, length: int) -> torch.Tensor:
    """Map indices into ``[0, length)`` by reflection about the edge pixels."""
    if length == 1:
        return torch.zeros_like(position)
    period = 2 * (length - 1)
    position = position.abs() % period
    return torch.where(position >= length, period - position, position)


def _gather(x: torch.Tensor, coords: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Values ``(K, C, M)`` of ``x`` at ``coords[k] + offsets[(k,) m]``, reflected at borders.

    ``coords`` is ``(K, 1 + ndim)`` (sample index first); ``offsets`` is ``(M, ndim)`` or
    ``(K, M, ndim)``. Positions become linear indices into a channels-last copy of ``x``.
    """
    channels, spatial = x.shape[1], x.shape[2:]
    positions = coords[:, None, 1:] + offsets  # (K, M, ndim)
    linear = coords[:, None, 0]
    for axis, length in enumerate(spatial):
        linear = linear * length + _reflect(positions[..., axis], length)
    channels_last = x.movedim(1, -1).reshape(-1, channels)  # (B * prod(spatial), C)
    return channels_last[linear].transpose(1, 2)


def _median(values: torch.Tensor, dim: int) -> torch.Tensor:
    """Median along ``dim``; the mean of the two middle values for an even count."""
    ordered = values.sort(dim=dim).values
    count = values.shape[dim]
    upper = ordered.narrow(dim, count // 2, 1)
    if count % 2:
        return upper.squeeze(dim)
    lower = ordered.narrow(dim, count // 2 - 1, 1)
    return ((lower + upper) / 2).squeeze(dim)
