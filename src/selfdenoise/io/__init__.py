"""Reading and writing images, model files and training checkpoints.

- :mod:`selfdenoise.io.images`: image files through a table of formats (TIFF, ``.npy`` and
  ``.zarr`` read and written; PNG, JPEG, BMP and GIF read), keeping axes, pixel sizes and
  their unit where the format can hold them.
- :mod:`selfdenoise.io.models`: model files (``.safetensors`` + JSON, never unpickled) and
  resumable checkpoints (``torch.load(weights_only=True)``).

Every write is atomic (a temporary sibling renamed over the target when complete), and
:func:`check_output_path` lets front ends refuse an output that would overwrite an input or
cannot be written before any long work starts. Errors are one-line
:class:`~selfdenoise.SelfDenoiseError` messages. Importing this package does not import torch.
"""

from ._files import check_output_folder, check_output_path, replace_atomically
from .images import (
    FORMATS,
    ImageFile,
    ImageFormat,
    open_zarr_output,
    output_format,
    read_image,
    staged_zarr_output,
    write_image,
)
from .models import (
    BUNDLE_FORMAT_VERSION,
    bundle_path,
    load_bundle,
    load_checkpoint,
    save_bundle,
    save_checkpoint,
)

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "FORMATS",
    "ImageFile",
    "ImageFormat",
    "bundle_path",
    "check_output_folder",
    "check_output_path",
    "load_bundle",
    "load_checkpoint",
    "open_zarr_output",
    "output_format",
    "read_image",
    "replace_atomically",
    "save_bundle",
    "save_checkpoint",
    "staged_zarr_output",
    "write_image",
]
