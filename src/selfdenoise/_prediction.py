"""How a :class:`~selfdenoise.Denoiser` lays out an image for prediction, and the output's
data type (torch-free)."""

from __future__ import annotations

import numpy as np

from ._errors import SelfDenoiseError
from .axes import Layout, validate_axes
from .config import DenoiserConfig
from .data import check_image

__all__ = ["cast_output", "prediction_layout"]


def prediction_layout(
    config: DenoiserConfig, in_channels: int | None, image, axes: str | None = None
) -> Layout:
    """The canonical layout a model with ``config`` predicts ``image`` with.

    ``axes=None`` means the model's axes, with a leading ``S`` when the image has one more
    dimension; a 2D model on ``ZYX`` data works slice by slice (``Z`` becomes ``S`` or ``T``).
    The image's dimensions and channels are checked against the model.
    """
    ndim = len(np.shape(image))
    model_axes = config.axes
    if axes is None:
        if ndim == len(model_axes):
            axes = model_axes
        elif ndim == len(model_axes) + 1 and "S" not in model_axes:
            axes = "S" + model_axes
        else:
            raise SelfDenoiseError(
                f"image has {ndim} dimensions but the model was trained on {model_axes!r}; "
                "give the image's axes (e.g. axes='TZYX')."
            )
    axes = validate_axes(axes, ndim)
    if config.ndim == 2 and "Z" in axes:
        free = next((a for a in "ST" if a not in axes), None)
        if free is None:
            raise SelfDenoiseError("a 2D model cannot denoise data with S, T and Z axes at once.")
        axes = axes.replace("Z", free)
    if config.ndim == 3 and "Z" not in axes:
        raise SelfDenoiseError("this is a 3D model; the image needs a Z axis (e.g. axes='ZYX').")
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
