"""The test input/output pair and the cover image of an exported model package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._errors import SelfDenoiseError
from ..axes import ModelAxesErrors, axes_for_model, to_canonical
from ._graph import GraphSpec

if TYPE_CHECKING:
    from ..api import Denoiser

TEST_SIDE = {2: 128, 3: 64}
"""Largest test-image side cut from a sample (the package's minimum size may be larger)."""

_AXES_ERRORS = ModelAxesErrors(
    dimensions="the sample has {ndim} dimensions but the model's axes are {model_axes!r}; "
    "give the sample's axes.",
    all_sample_axes="the sample has S, T and Z axes; give a 2D image or a stack.",
    needs_z="this is a 3D model; the sample needs a Z axis (e.g. axes='ZYX').",
)


def tiling_geometry(spec: GraphSpec) -> tuple[int, int]:
    """Halo and minimum input side of a package.

    The halo is the receptive radius rounded up to a multiple of the size multiple: a block
    padded by it stays a valid size and keeps the pooling grid of the unpadded image, so the
    pixels inside the halo come out as without padding. The minimum side leaves one size
    multiple inside the two halos.
    """
    m = spec.size_multiple
    halo = -(-spec.receptive_radius // m) * m
    return halo, 2 * halo + m


def sample_canonical(denoiser: Denoiser, spec: GraphSpec, sample, axes: str | None) -> np.ndarray:
    """One ``(1, C, *spatial)`` float32 image from the user's sample (or a synthetic one)."""
    if sample is None:
        return _synthetic(spec)
    array = np.asarray(sample)
    model_axes = denoiser.config.axes
    axes = axes_for_model(axes or None, array.ndim, model_axes, spec.ndim, _AXES_ERRORS)
    canonical, _ = to_canonical(array, axes, channels_jointly=True)
    if canonical.shape[1] != spec.channels:
        raise SelfDenoiseError(
            f"the sample has {canonical.shape[1]} channel(s) but the model takes {spec.channels}."
        )
    first = canonical[:1].astype(np.float32)
    if not np.isfinite(first).all():
        raise SelfDenoiseError("the sample has NaN or infinite values; choose another image.")
    return first


def _synthetic(spec: GraphSpec) -> np.ndarray:
    """Smooth blobs plus noise in the training intensity range (when no sample is given)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    shape = (1, spec.channels) + (TEST_SIDE[spec.ndim],) * spec.ndim
    blobs = gaussian_filter(rng.normal(size=shape), sigma=(0, 0) + (4,) * spec.ndim)
    blobs /= blobs.std() + 1e-12
    normalised = blobs + 0.5 * rng.normal(size=shape)
    offset = np.asarray(spec.offset).reshape((1, -1) + (1,) * spec.ndim)
    scale = np.asarray(spec.scale).reshape((1, -1) + (1,) * spec.ndim)
    return (normalised * scale + offset).astype(np.float32)


def fit_test_shape(image: np.ndarray, spec: GraphSpec, min_side: int) -> np.ndarray:
    """Crop (centre) or pad (mirror) the spatial axes to valid package sizes."""
    m = spec.size_multiple
    for axis in range(2, image.ndim):
        side = image.shape[axis]
        target = max(min_side, min(TEST_SIDE[spec.ndim], side // m * m))
        if side > target:
            start = (side - target) // 2
            image = np.take(image, np.arange(start, start + target), axis=axis)
        elif side < target:
            pad = [(0, 0)] * image.ndim
            pad[axis] = ((target - side) // 2, target - side - (target - side) // 2)
            image = np.pad(image, pad, mode="symmetric")
    return np.ascontiguousarray(image, dtype=np.float32)


NETWORK_ALONE = {"restore_detail": False, "collaborative_filter": False}
"""``predict`` options that leave out every step after the network."""


def predict_test_output(denoiser: Denoiser, spec: GraphSpec, test_input: np.ndarray) -> np.ndarray:
    """``Denoiser.predict`` of the test input on the CPU in float32, without TTA.

    Also without the steps after the network (the detail restoration of
    :mod:`selfdenoise.restore`, the filter of :mod:`selfdenoise.collaborative`): an exported
    package holds the network alone, so its test output is the network's.
    """
    import tempfile

    from ..api import Denoiser as _Denoiser

    # A CPU copy through the public seams (save, load onto the CPU): the user's model is
    # neither moved nor changed.
    with tempfile.TemporaryDirectory() as folder:
        clone = _Denoiser.load(denoiser.save(Path(folder) / "model.safetensors"), device="cpu")
    spatial = spec.spatial_axes
    if spec.channels == 1:
        plain = clone.predict(test_input[:, 0], "S" + spatial, tta=False, **NETWORK_ALONE)
        return plain[:, None]
    return clone.predict(test_input, "SC" + spatial, tta=False, **NETWORK_ALONE)


def write_cover(path: Path, test_input: np.ndarray, test_output: np.ndarray) -> None:
    """Input and output side by side (first channel, middle slice in 3D) as a PNG, both with
    the input's 1-99.5 percentile contrast."""
    import imageio.v3 as iio

    def plane(image: np.ndarray) -> np.ndarray:
        image = image[0, 0]
        return image[image.shape[0] // 2] if image.ndim == 3 else image

    raw, denoised = plane(test_input), plane(test_output)
    low, high = np.percentile(raw, [1, 99.5])
    scale = max(float(high - low), 1e-12)
    panels = [np.clip((p - low) / scale, 0, 1) for p in (raw, denoised)]
    picture = np.concatenate(panels, axis=1)
    factor = max(1, 256 // picture.shape[0])  # small test images: enlarge (nearest)
    picture = picture.repeat(factor, axis=0).repeat(factor, axis=1)
    iio.imwrite(path, (picture * 255).round().astype(np.uint8))
