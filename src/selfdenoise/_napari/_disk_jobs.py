"""Denoising to disk: a layer into a zarr store, and a folder of files (no Qt, no layers).

These jobs run in the Denoise widget's thread worker and hand back an
:class:`~._feedback.Outcome`. Memory stays bounded whatever the image size: tiled prediction
reads one batch of tiles at a time from the (lazy) input, and writes one slab of tiles at a
time into the store (:data:`MEMORY_BUDGET_TEXT`); neither input nor output is ever held
whole. A store is written in place, so a cancelled run leaves a readable partial store
(marked ``selfdenoise_complete: false`` in its attributes).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import SelfDenoiseError
from ._feedback import Outcome, outcome_from_exception
from ._torch_import import ensure_engine

if TYPE_CHECKING:
    from ..api import Denoiser

MEMORY_BUDGET_TEXT = (
    "forward-pass activations of at most 96 MiB (tiles chosen by _large_data.bounded_tiling "
    "unless a tile size is given), two batches of tile buffers, and one slab of the output "
    "of at most 256 MiB (tiling.SLAB_BYTES)"
)
"""The peak memory of a store job on top of the model, said in the docs and the benchmark."""

COMPLETE_KEY = "selfdenoise_complete"
"""Store attribute: False while a store is being written (and after a cancel), True when done."""

Progress = Callable[[float, int, float | None], None]


@dataclass
class StoreResult:
    """Where a store job wrote, and whether it finished.

    Attributes
    ----------
    path : Path
        The store a layer can be made from (level 0 for OME-Zarr until the pyramid is built).
    complete : bool
        False after a cancel: the store holds the tiles predicted so far (zeros elsewhere).
    multiscale : bool
        True when ``path`` is an OME-Zarr store with a pyramid.
    """

    path: Path
    complete: bool = True
    multiscale: bool = False


def temporary_store(layer_name: str) -> Path:
    """A new store path in a fresh temporary folder, named after the layer."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", layer_name).strip("._") or "image"
    folder = Path(tempfile.mkdtemp(prefix="selfdenoise-"))
    return folder / f"{safe}_denoised.zarr"


def is_lazy(data: Any) -> bool:
    """True for layer data that is not held in memory (dask, zarr, memmap...)."""
    return not isinstance(data, np.ndarray) or isinstance(data, np.memmap)


def store_chunks(shape: tuple[int, ...], axes: str, spatial_ndim: int) -> tuple[int, ...]:
    """Chunks that tiled prediction fills slab by slab: 256 in Y/X, whole C, 1 (2D models)
    or 32 (Z of 3D models) elsewhere."""
    chunks = []
    for letter, size in zip(axes, shape, strict=True):
        if letter in "YX":
            chunks.append(min(size, 256))
        elif letter == "C":
            chunks.append(size)
        elif letter == "Z" and spatial_ndim == 3:
            chunks.append(min(size, 32))
        else:
            chunks.append(1)
    return tuple(chunks)


def _level0_path(target: Path) -> Path:
    """For ``x.ome.zarr`` the plain level-0 store predicted first: ``x.level0.zarr``."""
    return target.with_name(target.name[: -len(".ome.zarr")] + ".level0.zarr")


def predict_to_store(
    denoiser: Denoiser,
    data: Any,
    axes: str,
    options: dict,
    target: str | os.PathLike,
    label: tuple[tuple | None, str | None] = (None, None),
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    inputs: tuple[str, ...] = (),
) -> Outcome:
    """Denoise ``data`` into a zarr store at ``target``; the value is a :class:`StoreResult`.

    ``target`` ending in ``.ome.zarr`` gets an OME-Zarr pyramid built from the finished
    level 0 (``x.level0.zarr`` while it is predicted, removed afterwards); any other name is a
    plain zarr array with our ``axes``/``scale``/``unit`` attributes. A cancelled run ends
    with ``Outcome(cancelled=True, value=StoreResult(..., complete=False))``. ``label`` is
    ``(scale, unit)`` for the store's attributes; ``inputs`` are files the store may not
    replace (the layer's source).
    """
    target = Path(target)
    ome = target.name.lower().endswith(".ome.zarr")
    path = _level0_path(target) if ome else target
    scale, unit = label
    try:
        ensure_engine()
        from ..io import check_output_path, open_zarr_output

        for output in {path, target}:
            check_output_path(output, inputs, folder_ok=True, option="the store")
        from .._large_data import bounded_tiling

        options = bounded_tiling(denoiser, data, axes, options)
        chunks = store_chunks(tuple(data.shape), axes, denoiser.config.ndim)
        out = open_zarr_output(path, tuple(data.shape), np.float32, chunks)
        out.attrs.update(_attributes(axes, scale, unit, complete=False))
        denoiser.predict(data, axes=axes, out=out, progress=progress, cancel=cancel, **options)
        out.attrs[COMPLETE_KEY] = True
    except Exception as exc:
        outcome = outcome_from_exception(exc)
        if outcome.cancelled and path.exists():
            outcome.value = StoreResult(path, complete=False)
        return outcome
    if not ome:
        return Outcome(value=StoreResult(path))
    return _build_pyramid(path, target, axes, scale, unit)


def _attributes(axes: str, scale: tuple | None, unit: str | None, complete: bool) -> dict:
    attrs: dict[str, Any] = {"axes": axes, COMPLETE_KEY: complete}
    if scale is not None and len(scale) == len(axes):
        attrs["scale"] = [float(v) for v in scale]
        if unit:
            attrs["unit"] = unit
    return attrs


def _build_pyramid(level0: Path, target: Path, axes: str, scale, unit) -> Outcome:
    try:
        import zarr

        from .._large_data import write_pyramid

        scale = tuple(scale) if scale is not None and len(scale) == len(axes) else None
        write_pyramid(target, zarr.open_array(str(level0), mode="r"), axes, scale, unit)
    except Exception as exc:
        return outcome_from_exception(exc)
    shutil.rmtree(level0, ignore_errors=True)
    return Outcome(value=StoreResult(target, multiscale=True))


def open_store(result: StoreResult) -> tuple[Any, bool]:
    """The layer data of a finished store, lazily: (dask array or list of levels, multiscale)."""
    if result.multiscale:
        from .. import ome

        levels = ome.open_ome_zarr(result.path).levels
        return (levels if len(levels) > 1 else levels[0]), len(levels) > 1
    import dask.array as da

    return da.from_zarr(str(result.path)), False


# --- folders -------------------------------------------------------------------------------


@dataclass
class FolderReport:
    """What a folder run did: written outputs, and ``(input, one-line error)`` per failure."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a notification."""
        total = len(self.written) + len(self.failed)
        text = f"denoised {len(self.written)} of {total} files"
        if self.failed:
            names = ", ".join(p.name for p, _ in self.failed[:3])
            more = "…" if len(self.failed) > 3 else ""
            text += f"; {len(self.failed)} failed and skipped ({names}{more}): {self.failed[0][1]}"
        return text


def folder_inputs(pattern: str) -> list[Path]:
    """The files of a folder (every file in it) or of a glob pattern, sorted."""
    text = os.path.expanduser(pattern.strip())
    if not text:
        raise SelfDenoiseError("give a folder or a pattern such as raw/*.tif.")
    if os.path.isdir(text) and not text.endswith((".zarr", ".zarr/")):
        found = sorted(p for p in Path(text).iterdir() if not p.name.startswith("."))
    else:
        found = sorted(Path(p) for p in glob.glob(text))
    if not found:
        raise SelfDenoiseError(f"no files match '{pattern}'; check the folder or pattern.")
    return found


def folder_outputs(inputs: list[Path], out_dir: str | None) -> list[Path]:
    """Output paths: ``name_denoised.ext`` next to each input, or ``name`` in ``out_dir``."""
    from ..io import output_format

    outputs = []
    for source in inputs:
        name = source.name
        try:
            output_format(name)
        except SelfDenoiseError:
            name = f"{source.stem}.tif"  # formats we only read become TIFFs
        if out_dir:
            outputs.append(Path(out_dir) / name)
        else:
            stem, dot, ext = name.partition(".")
            outputs.append(source.with_name(f"{stem}_denoised{dot}{ext}"))
    return outputs


def denoise_folder(
    denoiser: Denoiser,
    pattern: str,
    out_dir: str | None,
    options: dict,
    axes: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Outcome:
    """Denoise every file of a folder or pattern with one model; a bad file is skipped.

    The value is a :class:`FolderReport`. Outputs keep each input's name (with
    ``_denoised`` when written next to it), axes, pixel size and unit; zarr inputs are
    streamed into zarr outputs. ``progress`` gets ``(files_done, files, None)``.
    """
    try:
        inputs = folder_inputs(pattern)
        outputs = folder_outputs(inputs, out_dir)
        from ..io import check_output_folder, check_output_path

        if out_dir:
            check_output_folder(out_dir, inputs, option="the output folder")
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        for target in outputs:
            check_output_path(target, inputs, folder_ok=True, option="output")
        ensure_engine()
    except Exception as exc:
        return outcome_from_exception(exc)
    report = FolderReport()
    for index, (source, target) in enumerate(zip(inputs, outputs, strict=True)):
        if cancel is not None and cancel.is_set():
            return Outcome(cancelled=True, value=report)
        try:
            _denoise_file(denoiser, source, target, options, axes, cancel)
            report.written.append(target)
        except Exception as exc:
            outcome = outcome_from_exception(exc)
            if outcome.cancelled:
                return Outcome(cancelled=True, value=report)
            report.failed.append((source, outcome.error))
        if progress is not None:
            progress(index + 1, len(inputs), None)
    return Outcome(value=report)


def _denoise_file(denoiser, source: Path, target: Path, options, axes, cancel) -> None:
    from ..io import output_format, read_image, staged_zarr_output, write_image

    image = read_image(source, memmap=True)
    ndim = len(image.data.shape)
    file_axes = axes if axes and len(axes) == ndim else image.axes
    model_axes = denoiser.config.axes
    out_axes = file_axes or (model_axes if len(model_axes) == ndim else None)
    scale = image.scale if out_axes and image.scale else None
    if output_format(target).folder and not target.name.lower().endswith(".ome.zarr"):
        with staged_zarr_output(target, image.data.shape, np.float32) as out:
            denoiser.predict(image.data, axes=file_axes, out=out, cancel=cancel, **options)
            if out_axes:
                out.attrs.update(_attributes(out_axes, scale, image.unit, complete=True))
        return
    result = denoiser.predict(image.data, axes=file_axes, cancel=cancel, **options)
    write_image(target, result, axes=out_axes, scale=scale, unit=image.unit)
