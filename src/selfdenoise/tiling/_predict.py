"""Tiled prediction of arrays of any size, in memory or on disk."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from .._errors import SelfDenoiseError
from ..axes import Layout
from ..config import AMP_MODES, BLENDS
from ..device import autocast_dtype, configure_backends, select_device
from ._cancel import PredictionCancelled, is_cancelled
from ._forward import BatchForward, TileTooLarge, convert_memory_format, fast_memory_format
from ._grid import Tile, TileGrid, read_tile
from ._plan import TilePlan, choose_tiling, halve_tile
from ._writer import BlendWriter, CropWriter

ProgressCallback = Callable[[int, int, float], None]


def predict_tiled(
    network: torch.nn.Module,
    source,
    layout: Layout,
    normaliser=None,
    *,
    size_multiple: int,
    receptive_radius: int,
    tile_shape: tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    batch_size: int | None = None,
    blend: str = "crop",
    tta: bool = False,
    half: str = "auto",
    device=None,
    out=None,
    out_dtype=np.float32,
    progress: ProgressCallback | None = None,
    cancel=None,
    log: Callable[[str], None] | None = None,
):
    """Apply ``network`` to an image of any size, tile by tile.

    Each tile is read from ``source`` with a halo of ``overlap`` voxels, normalised,
    predicted in batches and stitched into ``out``. With ``blend='crop'`` (default) every
    tile keeps only its core; when the overlap covers the receptive field (the default) the
    result equals predicting the whole image at once (reflect-padded to a multiple of
    ``size_multiple``). ``blend='hann'`` instead blends overlapping tiles with smooth
    raised-cosine weights, which hides seams when a smaller overlap is chosen for speed.

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(B, C, *spatial)`` to the same shape. Put in eval mode for the call (its
        mode is restored afterwards) and moved to ``device`` if given.
    source : array-like
        Image in the user's axes order: numpy, memory-mapped TIFF, zarr or dask array.
        Only the tiles being predicted are read.
    layout : Layout
        Axes of ``source`` (:class:`selfdenoise.axes.Layout`).
    normaliser : object, optional
        With ``forward(block, sample)`` and ``inverse(block, sample)`` on ``(C, *spatial)``
        blocks (:class:`selfdenoise.data.Normaliser`); None leaves intensities as they are.
    size_multiple : int
        Spatial multiple the network needs (``2**depth``).
    receptive_radius : int
        Network halo; the default overlap.
    tile_shape, overlap, batch_size : optional
        Override :func:`choose_tiling`'s choice.
    blend : {'crop', 'hann'}
        How tiles are stitched.
    tta : bool
        Average the 8 flips/rotations in YX (8x the cost).
    half : {'auto', 'off', 'bf16', 'fp16'}
        Reduced precision (``auto``: bf16/fp16 on CUDA only). Outputs are float32.
    device : str or torch.device, optional
        Where to run; default: where the network's parameters are.
    out : array-like, optional
        Writable array of the user's shape (numpy, memmap, zarr) filled slab by slab;
        default: a new numpy array of ``out_dtype``.
    out_dtype : dtype
        Dtype of the new output array (integer outputs are rounded and clipped).
    progress : callable, optional
        ``progress(done_tiles, total_tiles, eta_seconds)`` after each batch.
    cancel : threading.Event or callable, optional
        Checked before each batch; when set, :class:`PredictionCancelled` is raised.
    log : callable, optional
        Receives one-line messages (also issued as warnings) when memory runs out.

    Returns
    -------
    array-like
        ``out``, filled.

    Raises
    ------
    PredictionCancelled
        When ``cancel`` asked to stop.
    SelfDenoiseError
        For bad settings or shapes, or if even the smallest tile does not fit in memory.
    """
    _check_settings(source, layout, blend, half)
    device = _resolve_device(network, device)
    network.to(device)
    configure_backends(device)
    out = _prepare_output(out, layout, out_dtype)
    plan = choose_tiling(
        layout.spatial_shape,
        n_channels=layout.n_channels,
        receptive_radius=receptive_radius,
        size_multiple=size_multiple,
        device=device,
        base_channels=_top_width(network),
        tile_shape=tile_shape,
        overlap=overlap,
        batch_size=batch_size,
        n_samples=layout.n_samples,
    )

    def notify(message: str) -> None:
        if log is not None:
            log(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    memory_format = fast_memory_format(device, layout.ndim)
    amp_dtype = _amp_dtype(device, half)
    forward = BatchForward(network, device, amp_dtype, tta, plan.batch_size, memory_format, notify)
    was_training = network.training
    network.eval()
    converted = convert_memory_format(network, memory_format)
    try:
        while True:
            run = _TiledRun(plan, source, layout, normaliser, size_multiple, out, blend)
            try:
                run.execute(forward, device, progress, cancel)
                return out
            except TileTooLarge:
                smaller = halve_tile(plan, layout.spatial_shape, size_multiple)
                if smaller is None:
                    raise SelfDenoiseError(
                        f"out of device memory even with {_shape(plan.tile_shape)} tiles; "
                        "predict on the CPU (device='cpu') or with a smaller model."
                    ) from None
                notify(
                    f"out of device memory: tile {_shape(plan.tile_shape)} -> "
                    f"{_shape(smaller.tile_shape)}, starting again."
                )
                plan = smaller
    finally:
        network.train(was_training)
        if converted:
            network.to(memory_format=torch.contiguous_format)


class _TiledRun:
    """One pass over every tile with a fixed plan: read, predict and write in a pipeline.

    A background thread reads and normalises batch ``i + 1`` and writes batch ``i - 1``
    while the network predicts batch ``i`` (torch releases the GIL), with two reused input
    buffers (pinned on CUDA).
    """

    def __init__(self, plan: TilePlan, source, layout, normaliser, multiple, out, blend):
        self.plan = plan
        self.source = source
        self.layout = layout
        self.normaliser = normaliser
        self.grid = TileGrid.build(
            layout.spatial_shape, plan.tile_shape, plan.overlap, multiple, layout.n_samples
        )
        writer = CropWriter if blend == "crop" else BlendWriter
        self.writer = writer(out, layout, self.grid, normaliser, layout.n_channels)

    def execute(self, forward: BatchForward, device: torch.device, progress, cancel) -> None:
        tiles = list(self.grid)
        size = min(self.plan.batch_size, len(tiles))
        batches = [tiles[i : i + size] for i in range(0, len(tiles), size)]
        shape = (size, self.layout.n_channels, *self.grid.tile_shape)
        pinned = device.type == "cuda"
        buffers = [torch.empty(shape, dtype=torch.float32, pin_memory=pinned) for _ in range(2)]
        started = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="selfdenoise-io")
        try:
            reading = pool.submit(self._read, batches[0], buffers[0])
            writing: Future | None = None
            for i, batch in enumerate(batches):
                if is_cancelled(cancel):
                    raise PredictionCancelled("prediction cancelled")
                inputs = reading.result()
                if i + 1 < len(batches):
                    reading = pool.submit(self._read, batches[i + 1], buffers[(i + 1) % 2])
                predictions = forward(inputs)
                if writing is not None:
                    writing.result()
                writing = pool.submit(self.writer.add, batch, predictions)
                if progress is not None:
                    done = i * size + len(batch)
                    elapsed = time.perf_counter() - started
                    progress(done, len(tiles), elapsed / done * (len(tiles) - done))
            writing.result()
            pool.submit(self.writer.finish).result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, tiles: list[Tile], buffer: torch.Tensor) -> torch.Tensor:
        array = buffer.numpy()
        for i, tile in enumerate(tiles):
            block = read_tile(
                self.source, self.layout, tile.sample, self.grid.origins(tile), self.grid.tile_shape
            )
            if self.normaliser is not None:
                block = self.normaliser.forward(block, tile.sample)
            array[i] = block
        return buffer[: len(tiles)]


def _check_settings(source, layout: Layout, blend: str, half: str) -> None:
    if blend not in BLENDS:
        raise SelfDenoiseError(f"blend must be one of {', '.join(BLENDS)}; got {blend!r}.")
    if half not in AMP_MODES:
        raise SelfDenoiseError(f"half must be one of {', '.join(AMP_MODES)}; got {half!r}.")
    if tuple(np.shape(source)) != layout.shape:
        raise SelfDenoiseError(
            f"image shape {tuple(np.shape(source))} does not match its layout {layout.shape}."
        )


def _resolve_device(network: torch.nn.Module, device) -> torch.device:
    if device is None:
        parameter = next(network.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")
    if isinstance(device, str):
        return select_device(device)
    return torch.device(device)


def _amp_dtype(device: torch.device, half: str) -> torch.dtype | None:
    if half == "off":
        return None
    return autocast_dtype(device, half)


def _prepare_output(out, layout: Layout, dtype):
    if out is None:
        return np.empty(layout.shape, dtype=dtype)
    if tuple(out.shape) != layout.shape:
        raise SelfDenoiseError(
            f"output array has shape {tuple(out.shape)} but the image has {layout.shape}; "
            "create it with the image's shape."
        )
    return out


def _top_width(network: torch.nn.Module) -> int:
    """Output channels of the first convolution: the U-Net's base width (for memory)."""
    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):
            return int(module.out_channels)
    return 32


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
