"""How a :class:`~selfdenoise.Denoiser` lays out an image for prediction, and the output's
data type (torch-free)."""

from __future__ import annotations

import numpy as np

from ._errors import SelfDenoiseError
from .axes import Layout, ModelAxesErrors, axes_for_model
from .config import DenoiserConfig
from .data import check_image

__all__ = ["cast_output", "prediction_layout"]

_AXES_ERRORS = ModelAxesErrors(
    dimensions="image has {ndim} dimensions but the model was trained on {model_axes!r}; "
    "give the image's axes (e.g. axes='TZYX').",
    all_sample_axes="a 2D model cannot denoise data with S, T and Z axes at once.",
    needs_z="this is a 3D model; the image needs a Z axis (e.g. axes='ZYX').",
)


def prediction_layout(
    config: DenoiserConfig, in_channels: int | None, image, axes: str | None = None
) -> Layout:
    """The canonical layout a model with ``config`` predicts ``image`` with.

    ``axes=None`` means the model's axes, with a leading ``S`` when the image has one more
    dimension; a 2D model on ``ZYX`` data works slice by slice (``Z`` becomes ``S`` or ``T``).
    The image's dimensions and channels are checked against the model.
    """
    axes = axes_for_model(axes, len(np.shape(image)), config.axes, config.ndim, _AXES_ERRORS)
    layout = check_image(image, axes)
    layout = Layout(layout.axes, layout.shape, config.channels_jointly)
    if layout.n_channels != in_channels:
        raise SelfDenoiseError(
            f"this model takes {in_channels} channel(s) but the image has {layout.n_channels}."
        )
    return layout


def cast_output(result, dtype, input_dtype):
    """``result`` in ``dtype`` (``'input'``: the input's; integers are rounded and clipped)."""
    if dtype is None or not isinstance(result, np.ndarray):
        return result
    target = (
        np.dtype(input_dtype) if isinstance(dtype, str) and dtype == "input" else np.dtype(dtype)
    )
    if target.kind in "ui":
        info = np.iinfo(target)
        return np.clip(np.rint(result), info.min, info.max).astype(target)
    return result.astype(target, copy=False)


def map_samples_dask(step, image, denoised, layout: Layout, halo: int, axes: str):
    """Lazy ``step(noisy_block, output_block, block_layout)`` over the blocks of a dask
    prediction, each block read with ``halo`` pixels (reflected at the edges) along the
    spatial ``axes``; the steps after the network use it for ``predict_dask``."""
    import dask.array as da

    depth = {axis: (halo if name in axes else 0) for axis, name in enumerate(layout.axes)}
    dtype = denoised.dtype
    channels_jointly = layout.channels_jointly

    def run_block(noisy_block: np.ndarray, output_block: np.ndarray) -> np.ndarray:
        block_layout = Layout(layout.axes, noisy_block.shape, channels_jointly)
        result = step(noisy_block, np.array(output_block, dtype=np.float32), block_layout)
        return cast_output(result, dtype, dtype)

    aligned = image.rechunk(denoised.chunks)
    return da.map_overlap(
        run_block, aligned, denoised, depth=depth, boundary="reflect", dtype=dtype
    )
