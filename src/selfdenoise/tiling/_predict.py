"""Tiled prediction of arrays of any size, in memory or on disk."""

from __future__ import annotations

import functools
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
from ._cancel import FORWARD_THREADS, raise_if_cancelled, run_cancellable
from ._forward import (
    BatchForward,
    ForwardMonitor,
    TileTooLarge,
    fast_memory_format,
    prediction_copy,
)
from ._grid import Tile, TileGrid, read_tile_into, tile_axis
from ._parallel import bands, is_in_memory, run_bands
from ._plan import TilePlan, choose_tiling, halve_tile
from ._writer import BlendWriter, CropWriter

ProgressCallback = Callable[[float, int, float], None]

REPORT_SECONDS = 0.5
"""Least time between two progress reports within one batch."""


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
        Maps ``(B, C, *spatial)`` to the same shape. It is never changed: the prediction
        runs on a private copy (eval mode, on ``device``, channels-last on CPU and CUDA), so
        one module may serve predictions in several threads at once, or predict while it
        trains in another thread (with the weights as they are when the call starts).
    source : array-like
        Image in the user's axes order: numpy, memory-mapped TIFF, zarr or dask array.
        Only the tiles being predicted are read.
    layout : Layout
        Axes of ``source`` (:class:`selfdenoise.axes.Layout`).
    normaliser : object, optional
        With ``forward(block, sample, out=None)`` and ``inverse(block, sample, out=None)``
        on float32 ``(C, *spatial)`` blocks, writing into ``out`` when given (``out`` is
        ``block`` itself: tiles are normalised in place); see
        :class:`selfdenoise.data.Normaliser`. None leaves intensities as they are.
    size_multiple : int
        Spatial multiple the network needs (``2**depth``).
    receptive_radius : int
        Network halo; the default overlap.
    tile_shape, overlap, batch_size : optional
        Override :func:`choose_tiling`'s choice. An overlap below ``receptive_radius`` in
        crop mode may leave seams; it is warned about once (``log`` and RuntimeWarning).
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
        ``progress(done_tiles, total_tiles, eta_seconds)`` after each batch, and at most
        every half second within a long batch (then ``done_tiles`` is fractional, from the
        arithmetic done so far), so that one big CPU tile still shows progress.
    cancel : threading.Event or callable, optional
        Watched while the prediction runs (every 50 ms, on the calling thread); when set,
        :class:`PredictionCancelled` is raised within about that time, even in the middle
        of a forward pass, which then stops at its next layer.
    log : callable, optional
        Receives one-line messages (also issued as warnings) when memory runs out or the
        overlap is too thin to hide seams.

    Returns
    -------
    array-like
        ``out``, filled.

    Raises
    ------
    PredictionCancelled
        When ``cancel`` asked to stop.
    SelfDenoiseError
        For bad settings or shapes, NaN or infinite values in a tile as it is read, or if
        even the smallest tile does not fit in memory.
    """
    _check_settings(source, layout, blend, half)
    device = _resolve_device(network, device)
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

    if blend == "crop" and overlap is not None:
        _warn_thin_overlap(plan, layout, size_multiple, receptive_radius, notify)
    memory_format = fast_memory_format(device, layout.ndim)
    # Thread safety: predict with a private copy, never the caller's module (see
    # prediction_copy); the hooks that report progress and abort live on the copy too.
    network = prediction_copy(network, device, memory_format)
    probe_shape = (1, layout.n_channels, *(2 * size_multiple,) * layout.ndim)
    probe = torch.zeros(probe_shape, device=device).contiguous(memory_format=memory_format)
    monitor = ForwardMonitor(network, probe)
    amp_dtype = _amp_dtype(device, half)
    forward = BatchForward(network, device, amp_dtype, tta, plan.batch_size, memory_format, notify)
    while True:
        run = _TiledRun(plan, source, layout, normaliser, size_multiple, out, blend)
        try:
            run.execute(forward, monitor, device, progress, cancel)
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


def _warn_thin_overlap(plan: TilePlan, layout: Layout, multiple: int, radius: int, notify):
    """One warning when tiles meet with less context than the receptive radius (crop mode)."""
    thin = [
        halo
        for size, tile, halo in zip(
            layout.spatial_shape, plan.tile_shape, plan.overlap, strict=True
        )
        if halo < radius and len(tile_axis(size, tile, halo, multiple)) > 1
    ]
    if thin:
        notify(
            f"overlap {min(thin)} is below the network's receptive radius ({radius}): seams "
            f"may show between tiles; use an overlap of at least {radius}, or blend='hann'."
        )


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

    def execute(
        self, forward: BatchForward, monitor: ForwardMonitor, device: torch.device, progress, cancel
    ) -> None:
        tiles = list(self.grid)
        size = min(self.plan.batch_size, len(tiles))
        batches = [tiles[i : i + size] for i in range(0, len(tiles), size)]
        shape = (size, self.layout.n_channels, *self.grid.tile_shape)
        pinned = device.type == "cuda"
        buffers = [torch.empty(shape, dtype=torch.float32, pin_memory=pinned) for _ in range(2)]
        report = _Reporter(progress, len(tiles), monitor, 8 if forward.tta else 1)
        # Two I/O threads: reading batch i + 1 and writing batch i - 1 overlap (each stays
        # in order: a read or write is submitted only after the previous one finished).
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="selfdenoise-io")
        # Forward passes run on one helper thread, so that cancel acts within a long pass
        # (see run_cancellable). On a loaded 2-core machine this was also about 5x faster
        # than running them on the calling thread next to the I/O thread (768x768 2D image,
        # 128x128 tiles, same process, interleaved: 7-10 s against 35-57 s). The thread is
        # reused by later predictions: cuDNN's algorithm choices live per thread.
        try:
            with FORWARD_THREADS.borrow() as compute:
                self._pipeline(batches, buffers, forward, monitor, report, pool, compute, cancel)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _pipeline(self, batches, buffers, forward, monitor, report, pool, compute, cancel):
        """Read batch ``i + 1`` and write batch ``i - 1`` on ``pool`` while ``compute``
        predicts batch ``i``."""
        size = len(batches[0])
        reading = pool.submit(self._read, batches[0], buffers[0])
        writing: Future | None = None
        for i, batch in enumerate(batches):
            raise_if_cancelled(cancel)
            inputs = reading.result()
            if i + 1 < len(batches):
                reading = pool.submit(self._read, batches[i + 1], buffers[(i + 1) % 2])
            report.start_batch(i * size, inputs)
            predictions = run_cancellable(
                functools.partial(forward, inputs),
                compute,
                cancel,
                monitor.abort,
                report.within_batch_hook,
            )
            if writing is not None:
                writing.result()
            writing = pool.submit(self.writer.add, batch, predictions)
            report(i * size + len(batch))
        writing.result()
        pool.submit(self.writer.finish).result()

    def _read(self, tiles: list[Tile], buffer: torch.Tensor) -> torch.Tensor:
        """Read, check and normalise ``tiles`` into ``buffer`` in place (no temporaries);
        large tiles of in-memory images are read in bands on several threads."""
        array = buffer.numpy()
        in_memory = is_in_memory(self.source)
        for i, tile in enumerate(tiles):
            origins = self.grid.origins(tile)
            parts = bands(self.grid.tile_shape) if in_memory else [slice(None)]
            run_bands(functools.partial(self._read_band, tile, origins, array[i]), parts)
        return buffer[: len(tiles)]

    def _read_band(self, tile: Tile, origins, out: np.ndarray, rows: slice) -> None:
        start = (origins[0] + (rows.start or 0), *origins[1:])
        block = read_tile_into(self.source, self.layout, tile.sample, start, out[:, rows])
        _check_finite(block, origins)
        if self.normaliser is not None:
            self.normaliser.forward(block, tile.sample, out=block)


class _Reporter:
    """Progress after each batch, and within a batch that runs for long (CPU, big tiles).

    Within a batch, the fraction done is the monitor's work so far over the batch's
    expected work. The work per voxel is measured once, by a small probe, only when a
    batch has run for :data:`REPORT_SECONDS` (short predictions never pay for it). Reports
    come at most every :data:`REPORT_SECONDS` and never reach the batch's end, which only
    the batch-level report announces. ``done`` counts tiles and is fractional within a
    batch.
    """

    def __init__(self, progress, total: int, monitor: ForwardMonitor, passes: int):
        self.progress = progress
        self.total = total
        self.monitor = monitor
        self.passes = passes  # forward passes per batch (8 with test-time augmentation)
        self.started = self.last = time.perf_counter()
        self.done = 0
        self.batch_tiles = 0
        self.batch_voxels = 0

    @property
    def within_batch_hook(self):
        """:meth:`within_batch`, or None without a progress callback."""
        return self.within_batch if self.progress is not None else None

    def start_batch(self, done: int, inputs: torch.Tensor) -> None:
        self.done = done
        self.batch_tiles = len(inputs)
        self.batch_voxels = inputs[:, 0].numel()
        self.batch_started = time.perf_counter()
        self.monitor.reset()

    def within_batch(self) -> None:
        now = time.perf_counter()
        if min(now - self.last, now - self.batch_started) < REPORT_SECONDS:
            return
        expected = self.monitor.calibrate() * self.batch_voxels * self.passes
        if expected > 0:
            fraction = min(self.monitor.work / expected, 0.99)
            self._send(self.done + fraction * self.batch_tiles, time.perf_counter())

    def __call__(self, done: int) -> None:
        if self.progress is not None:
            self._send(done, time.perf_counter())

    def _send(self, done: float, now: float) -> None:
        self.last = now
        if done <= 0:
            return
        eta = (now - self.started) / done * (self.total - done)
        self.progress(done, self.total, eta)


def _check_finite(block: np.ndarray, origins) -> None:
    # The extremes are NaN or infinite exactly when some voxel is; two passes without the
    # temporary mask of np.isfinite.
    if block.size and not (np.isfinite(block.min()) and np.isfinite(block.max())):
        where = ", ".join(map(str, origins))
        raise SelfDenoiseError(
            f"the image contains NaN or infinite values (in the tile starting at {where}); "
            "replace them first, e.g. with numpy.nan_to_num(image) or the image's median."
        )


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
    """Prediction's autocast dtype: as training's, except that ``auto`` on the CPU stays
    float32 (bf16 pays there for training; exact outputs matter more when predicting)."""
    if half == "off" or (half == "auto" and device.type == "cpu"):
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
