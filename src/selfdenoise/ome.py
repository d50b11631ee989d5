"""OME formats: OME-Zarr (NGFF 0.4 and 0.5) and the physical pixel sizes of OME/ImageJ TIFFs.

OME-Zarr goes through ome-zarr-py (the ``ome`` extra): level 0 of a multiscale image is read
lazily with its axes, scale, translation and units; writing streams a NumPy, zarr or dask array
into level 0 plus a pyramid (2x in YX per level, and in Z while that keeps the voxels no more
anisotropic), so napari and other viewers open it lazily. TIFF physical sizes come from
tifffile's OME-XML and ImageJ parsing.

Axes follow :mod:`selfdenoise.axes`: NGFF's ``t``/``c``/``z``/``y``/``x`` become ``T``/``C``/
``Z``/``Y``/``X``; our sample axis ``S`` is written as a custom NGFF axis ``s``. NGFF requires
the order ``t, (s), c, z, y, x``, so other orders are transposed on writing and come back in
that order. Units are NGFF (UDUNITS) names such as ``"micrometer"``.

Nothing here imports torch; the third-party imports happen inside the functions. The code
lives in private modules: ``_ome_zarr`` (OME-Zarr), ``_ome_tiff`` (TIFF sizes, OME-TIFF) and
``_ome_units`` (units and the checks both writers share).
"""

from __future__ import annotations

from ._errors import SelfDenoiseError as SelfDenoiseError  # was importable from here
from ._ome_tiff import tiff_physical_metadata, write_ome_tiff
from ._ome_units import normalize_unit
from ._ome_zarr import (
    OmeZarrImage,
    is_ome_zarr,
    open_ome_zarr,
    pyramid_factors,
    read_ome_zarr,
    write_ome_zarr,
)

__all__ = [
    "OmeZarrImage",
    "is_ome_zarr",
    "normalize_unit",
    "open_ome_zarr",
    "pyramid_factors",
    "read_ome_zarr",
    "tiff_physical_metadata",
    "write_ome_tiff",
    "write_ome_zarr",
]
