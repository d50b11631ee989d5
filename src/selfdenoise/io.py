"""Reading and writing images, model files and training checkpoints.

Images: TIFF (``tifffile``), ``.npy`` and ``.zarr``. Axes and pixel sizes are kept where the
format can hold them (ImageJ hyperstacks, TIFF tags, zarr attributes; ``.npy`` holds neither).

Models: one ``.safetensors`` file holding the weights and, in its metadata, a JSON document
(configuration, normalisation, history, version). Loading a model never unpickles anything.
Resumable checkpoints use ``torch.save`` and are read back with ``torch.load(weights_only=True)``.

This module does not import torch at import time, so front ends can read images cheaply.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import SelfDenoiseError
from .axes import validate_axes

if TYPE_CHECKING:
    import torch

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "ImageFile",
    "load_bundle",
    "load_checkpoint",
    "open_zarr_output",
    "read_image",
    "save_bundle",
    "save_checkpoint",
    "write_image",
]

BUNDLE_FORMAT_VERSION = 1
"""Version of the model file layout; bumped when older readers could misread a file."""

_SUPPORTED = "TIFF, .npy and .zarr are supported"
_TIFF_SUFFIXES = (".tif", ".tiff")
_TIFF_TO_AXES = {"T": "T", "Z": "Z", "C": "C", "S": "C", "Y": "Y", "X": "X"}
_IMAGEJ_ORDER = "TZCYX"
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_BIGTIFF_BYTES = 2**32 - 2**25  # leave room for tags and offsets


@dataclass
class ImageFile:
    """An image read from disk.

    Attributes
    ----------
    data : array-like
        A NumPy array, a read-only ``numpy.memmap`` or a zarr array (read lazily).
    axes : str or None
        Axes letters from ``STCZYX``, or ``None`` when the file does not say.
    scale : tuple of float or None
        Pixel size per axis (1.0 where unknown), or ``None`` when the file has none.
    path : Path
        Where the image was read from.
    """

    data: Any
    axes: str | None
    scale: tuple[float, ...] | None
    path: Path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(_TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".zarr") or (path / "zarr.json").exists() or (path / ".zarray").exists():
        return "zarr"
    return None


# --- reading images ------------------------------------------------------------------------


def read_image(path: str | os.PathLike, memmap: bool = False) -> ImageFile:
    """Read an image file.

    Parameters
    ----------
    path : str or path-like
        A ``.tif``/``.tiff``, ``.npy`` or ``.zarr`` path (a zarr group must hold one array).
    memmap : bool
        Memory-map TIFF pixel data when the file allows it (uncompressed, contiguous);
        otherwise the data is read into memory. ``.npy`` files are always memory-mapped and
        zarr arrays are always read lazily.

    Returns
    -------
    ImageFile

    Raises
    ------
    SelfDenoiseError
        If the file is missing, of an unsupported type or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise SelfDenoiseError(f"cannot read '{path}': no such file; {_SUPPORTED}.")
    kind = _kind(path)
    if kind is None:
        raise SelfDenoiseError(f"cannot read '{path}': unsupported file type; {_SUPPORTED}.")
    try:
        if kind == "tiff":
            data, axes, scale = _read_tiff(path, memmap)
        elif kind == "npy":
            data, axes, scale = _read_npy(path)
        else:
            data, axes, scale = _read_zarr(path)
    except SelfDenoiseError:
        raise
    except Exception as exc:
        raise SelfDenoiseError(f"cannot read '{path}': {_one_line(exc)}; {_SUPPORTED}.") from exc
    if axes is None:
        scale = None
    return ImageFile(data=data, axes=axes, scale=scale, path=path)


def _read_npy(path: Path) -> tuple[Any, None, None]:
    return np.load(path, mmap_mode="r", allow_pickle=False), None, None


def _read_tiff(path: Path, memmap: bool) -> tuple[Any, str | None, tuple[float, ...] | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = _tiff_axes(tif, series.axes)
        scale = _tiff_scale(tif, series, axes) if axes else None
        data = None
        if not memmap:
            data = series.asarray()
    if memmap:
        try:
            data = tifffile.memmap(path, series=0, mode="r")
        except ValueError:  # compressed, tiled or scattered: read into memory instead
            data = tifffile.imread(path, series=0)
    return data, axes, scale


def _shaped_metadata(tif: Any) -> dict[str, Any]:
    shaped = tif.shaped_metadata
    return dict(shaped[0]) if shaped else {}


def _tiff_axes(tif: Any, tiff_axes: str) -> str | None:
    """Our axes for a TIFF: as we wrote them, else mapped from tifffile's letters."""
    written = _shaped_metadata(tif).get("selfdenoise_axes")
    axes = written if written else "".join(_TIFF_TO_AXES.get(a, "?") for a in tiff_axes)
    return _valid_axes_or_none(axes, len(tiff_axes))


def _valid_axes_or_none(axes: str, ndim: int) -> str | None:
    try:
        return validate_axes(axes, ndim)
    except SelfDenoiseError:
        return None


def _tiff_scale(tif: Any, series: Any, axes: str) -> tuple[float, ...] | None:
    written = _shaped_metadata(tif).get("selfdenoise_scale")
    if written and len(written) == len(axes):
        return tuple(float(v) for v in written)
    sizes: dict[str, float] = {}
    tags = series.keyframe.tags
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            numerator, denominator = tags[tag].value
            if numerator and (numerator, denominator) != (1, 1):
                sizes[letter] = denominator / numerator  # pixels per unit -> unit per pixel
    imagej = tif.imagej_metadata or {}
    for letter, key in (("Z", "spacing"), ("T", "finterval")):
        if imagej.get(key):
            sizes[letter] = float(imagej[key])
    if not sizes:
        return None
    return tuple(float(sizes.get(letter, 1.0)) for letter in axes)


def _read_zarr(path: Path) -> tuple[Any, str | None, tuple[float, ...] | None]:
    import zarr

    node = zarr.open(str(path), mode="r")
    attrs = dict(node.attrs)
    if isinstance(node, zarr.Array):
        return node, *_zarr_axes_scale(attrs, node.ndim)
    names = sorted(node.array_keys())
    if len(names) != 1:
        raise SelfDenoiseError(
            f"cannot read '{path}': the zarr group holds {len(names)} arrays, not one; "
            f"give the path of one array, e.g. '{path / (names[0] if names else '0')}'."
        )
    array = node[names[0]]
    return array, *_zarr_axes_scale({**attrs, **dict(array.attrs)}, array.ndim)


def _zarr_axes_scale(attrs: dict, ndim: int) -> tuple[str | None, tuple[float, ...] | None]:
    axes = attrs.get("axes")
    axes = _valid_axes_or_none(axes, ndim) if isinstance(axes, str) else None
    scale = attrs.get("scale")
    if axes is None or not isinstance(scale, list) or len(scale) != ndim:
        return axes, None
    return axes, tuple(float(v) for v in scale)


# --- writing images ------------------------------------------------------------------------


def write_image(
    path: str | os.PathLike,
    array: Any,
    axes: str | None = None,
    scale: tuple[float, ...] | None = None,
) -> Path:
    """Write an image; the format follows the suffix.

    Parameters
    ----------
    path : str or path-like
        ``.tif``/``.tiff`` (ImageJ hyperstack when the axes are in ImageJ order ``TZCYX`` and
        the dtype is uint8, uint16 or float32; otherwise a plain TIFF that keeps the axes in
        its metadata; BigTIFF above 4 GB), ``.npy`` (axes and scale are not kept) or
        ``.zarr`` (chunked, axes and scale in the attributes). Existing files are replaced.
    array : array-like
        NumPy, dask or zarr array. Zarr output is written slab by slab along the first axis.
    axes : str, optional
        Axes letters, one per dimension.
    scale : tuple of float, optional
        Pixel size per axis.

    Returns
    -------
    Path
        The written path.
    """
    path = Path(path)
    kind = _kind(path)
    if kind is None:
        raise SelfDenoiseError(
            f"cannot write '{path}': unsupported file type; use .tif, .npy or .zarr."
        )
    ndim = len(array.shape)
    if axes is not None:
        axes = validate_axes(axes, ndim)
    if scale is not None:
        scale = tuple(float(v) for v in scale)
        if len(scale) != ndim:
            raise SelfDenoiseError(f"scale has {len(scale)} values but the image has {ndim} axes.")
    try:
        if kind == "tiff":
            _write_tiff(path, np.asarray(array), axes, scale)
        elif kind == "npy":
            np.save(path, np.asarray(array), allow_pickle=False)
        else:
            _write_zarr(path, array, axes, scale)
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {_one_line(exc)}.") from exc
    return path


def _write_tiff(path: Path, array: np.ndarray, axes: str | None, scale: tuple | None) -> None:
    import tifffile

    sizes = dict(zip(axes, scale, strict=True)) if axes and scale else {}
    resolution = None
    if "X" in sizes and "Y" in sizes:
        resolution = (1.0 / sizes["X"], 1.0 / sizes["Y"])
    bigtiff = array.nbytes > _BIGTIFF_BYTES
    if axes and _is_imagej_order(axes) and array.dtype in _IMAGEJ_DTYPES and not bigtiff:
        metadata: dict[str, Any] = {"axes": axes}
        if sizes.get("Z", 1.0) != 1.0:
            metadata["spacing"] = sizes["Z"]
        if sizes.get("T", 1.0) != 1.0:
            metadata["finterval"] = sizes["T"]
        tifffile.imwrite(path, array, imagej=True, metadata=metadata, resolution=resolution)
        return
    metadata = {}
    if axes:
        metadata = {"axes": axes.replace("S", "Q"), "selfdenoise_axes": axes}
        if scale:
            metadata["selfdenoise_scale"] = list(scale)
    tifffile.imwrite(
        path,
        array,
        bigtiff=bigtiff,
        photometric="minisblack",
        metadata=metadata,
        resolution=resolution,
    )


def _is_imagej_order(axes: str) -> bool:
    positions = [_IMAGEJ_ORDER.find(letter) for letter in axes]
    return -1 not in positions and positions == sorted(positions)


def _write_zarr(path: Path, array: Any, axes: str | None, scale: tuple | None) -> None:
    output = open_zarr_output(path, tuple(array.shape), np.dtype(array.dtype))
    if axes:
        output.attrs["axes"] = axes
    if axes and scale:
        output.attrs["scale"] = list(scale)
    if len(array.shape) == 0:
        output[...] = np.asarray(array)
        return
    step = output.chunks[0]
    for start in range(0, array.shape[0], step):
        output[start : start + step] = np.asarray(array[start : start + step])


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    limits = [256, 256, 32]  # X, Y, then Z (or another third-last axis); 1 beyond
    chunks = [min(size, limits[i]) if i < len(limits) else 1 for i, size in enumerate(shape[::-1])]
    return tuple(max(c, 1) for c in chunks[::-1])


def open_zarr_output(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...] | None = None,
) -> Any:
    """Create (or replace) a writable zarr array for incremental, block-by-block output.

    Parameters
    ----------
    path : str or path-like
        Where the ``.zarr`` store goes.
    shape : tuple of int
        Array shape.
    dtype : dtype-like
        Array dtype.
    chunks : tuple of int, optional
        Chunk shape; default up to 256 x 256 in the last two axes, 32 in the third-last,
        1 elsewhere.

    Returns
    -------
    zarr.Array
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    chunks = _default_chunks(shape) if chunks is None else tuple(int(c) for c in chunks)
    try:
        return zarr.open_array(
            str(path), mode="w", shape=shape, dtype=np.dtype(dtype), chunks=chunks
        )
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {_one_line(exc)}.") from exc


# --- model bundles -------------------------------------------------------------------------


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {_one_line(exc)}.") from exc
    finally:
        temporary.unlink(missing_ok=True)


def save_bundle(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict
) -> Path:
    """Save a model as one ``.safetensors`` file (weights + JSON metadata, no pickle).

    Parameters
    ----------
    path : str or path-like
        Target file; ``.safetensors`` is appended when the name has no suffix.
    state_dict : dict of str to torch.Tensor
        Weights and buffers (moved to the CPU and made contiguous).
    metadata : dict
        JSON-serialisable description (configuration, normalisation, history, ...).

    Returns
    -------
    Path
        The written file.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".safetensors")
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in state_dict.items()}
    header = {
        "selfdenoise": json.dumps(metadata),
        "selfdenoise_format": str(BUNDLE_FORMAT_VERSION),
        "format": "pt",
    }
    _replace_atomically(path, lambda target: save_file(tensors, str(target), metadata=header))
    return path


def _not_a_model(path: Path, reason: str) -> SelfDenoiseError:
    return SelfDenoiseError(
        f"'{path}' is not a napari-selfdenoise model file ({reason}); "
        "choose a .safetensors file saved by napari-selfdenoise."
    )


def _check_safetensors_header(path: Path) -> None:
    """Reject files that cannot be safetensors before handing them to the parser."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(9)
    header_length = int.from_bytes(start[:8], "little") if len(start) == 9 else 0
    if 0 < header_length <= size - 8 and start[8:9] == b"{":
        return
    if start[:2] == b"PK" or start[:1] == b"\x80":
        raise _not_a_model(path, "it looks like a pickled PyTorch file, which is never loaded")
    raise _not_a_model(path, "not a safetensors file, or truncated")


def load_bundle(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a model saved by :func:`save_bundle`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        The ``.safetensors`` file (the suffix may be left out).

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        Tensors on the CPU.
    metadata : dict
        The JSON metadata given to :func:`save_bundle`.

    Raises
    ------
    SelfDenoiseError
        If the file is missing, corrupt, truncated, not safetensors, or not ours.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists() and not path.suffix and path.with_suffix(".safetensors").exists():
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise SelfDenoiseError(f"model file '{path}' does not exist; check the path.")
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        if "selfdenoise" not in header:
            raise _not_a_model(path, "no napari-selfdenoise metadata")
        version = int(header.get("selfdenoise_format", "1"))
        if version > BUNDLE_FORMAT_VERSION:
            raise SelfDenoiseError(
                f"'{path}' was saved by a newer napari-selfdenoise (model format {version}); "
                "upgrade napari-selfdenoise to load it."
            )
        metadata = json.loads(header["selfdenoise"])
        if not isinstance(metadata, dict):
            raise _not_a_model(path, "its metadata is not a JSON object")
        state_dict = load_file(str(path), device="cpu")
    except SelfDenoiseError:
        raise
    except Exception as exc:  # safetensors, JSON and integer parsing errors
        raise _not_a_model(path, _one_line(exc)) from exc
    return state_dict, metadata


# --- resumable checkpoints -----------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Save a resumable training state with ``torch.save`` (atomically).

    Parameters
    ----------
    path : str or path-like
        Target file (conventionally ``.pt``).
    state : dict
        Model, optimiser and scheduler state dicts, the step, RNG states as tensors and
        JSON-able extras: only what ``torch.load(weights_only=True)`` accepts (tensors,
        dicts, lists, tuples, strings, numbers, booleans, ``None``).

    Returns
    -------
    Path
        The written file.
    """
    import torch

    path = Path(path)
    _replace_atomically(path, lambda target: torch.save(state, target))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code runs).

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.
    map_location : str or torch.device
        Where tensors are loaded (default: the CPU).

    Returns
    -------
    dict

    Raises
    ------
    SelfDenoiseError
        If the file is missing, corrupt or holds anything but plain data and tensors.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise SelfDenoiseError(f"checkpoint '{path}' does not exist; check the path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and type-restriction errors
        raise SelfDenoiseError(
            f"cannot resume from '{path}': not a valid napari-selfdenoise checkpoint "
            f"({_one_line(exc)})."
        ) from exc
    if not isinstance(state, dict):
        raise SelfDenoiseError(f"cannot resume from '{path}': the checkpoint holds no state.")
    return state
