"""Tiled prediction for images of any size: 2D/3D, in memory, on disk or in dask.

- :func:`predict_tiled` predicts an array (numpy, memory-mapped TIFF, zarr, dask) tile by
  tile into a numpy, memmap or zarr output, with bounded memory.
- :func:`predict_dask` builds the same prediction lazily as a dask array (scale-out path).
- :func:`choose_tiling` picks tile shape, overlap and batch size.

Tiles are stitched by keeping each tile's core (``blend='crop'``, the default: with the
overlap at least the network's receptive radius the result equals whole-image prediction)
or by blending with raised-cosine weights (``blend='hann'``). See :mod:`._grid` for the
geometry. The planning part is importable without torch; the rest imports it on first use.

Prediction never changes the network it is given: each call runs a private copy (eval
mode, fast memory format), so one model may serve several threads, or predict while it
trains. Forward passes run on a helper thread, so that ``cancel`` acts within about 50 ms
even during one long pass, and ``progress`` reports fractions of a tile within it. Tiles
holding NaN or infinite values are refused with a one-line error as they are read.
"""

from ._cancel import PredictionCancelled
from ._plan import TilePlan, choose_tiling

__all__ = [
    "NetworkFactory",
    "PredictionCancelled",
    "TilePlan",
    "choose_tiling",
    "network_builds",
    "predict_dask",
    "predict_tiled",
]

_TORCH_PARTS = {
    "predict_tiled": "._predict",
    "predict_dask": "._dask",
    "NetworkFactory": "._dask",
    "network_builds": "._dask",
}


def __getattr__(name: str):
    if name in _TORCH_PARTS:
        import importlib

        module = importlib.import_module(_TORCH_PARTS[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
