"""Line profiles: intensities of image layers along a line drawn in a Shapes layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import SelfDenoiseError
from ._layers import base_data, first_line


def line_world_endpoints(viewer: Any, shapes: Any) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates (viewer dimensionality) of the first line's two ends.

    A line drawn in a layer with fewer dimensions than the viewer gets the viewer's current
    position in the missing leading dimensions (the slice it was drawn on).
    """
    vertices = first_line(shapes)
    ends = []
    point = np.asarray(viewer.dims.point, dtype=float)
    for vertex in (vertices[0], vertices[-1]):
        world = np.asarray(shapes.data_to_world(vertex), dtype=float)
        missing = point.size - world.size
        ends.append(np.concatenate([point[:missing], world]) if missing > 0 else world)
    return ends[0], ends[1]


def line_profile(
    layer: Any, start_world: np.ndarray, end_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``layer`` (linear interpolation) along a straight line in world coordinates.

    Parameters
    ----------
    layer : napari.layers.Image
        The image to sample (not RGB).
    start_world, end_world : ndarray
        Ends of the line in world coordinates.

    Returns
    -------
    distance, values : ndarray
        Distance from the start in data pixels, and the sampled intensities (about one
        sample per pixel).
    """
    from scipy import ndimage

    if getattr(layer, "rgb", False):
        raise SelfDenoiseError(f"layer {layer.name!r} is RGB; line profiles need a grey image.")
    start = np.asarray(layer.world_to_data(start_world), dtype=float)
    end = np.asarray(layer.world_to_data(end_world), dtype=float)
    length = float(np.linalg.norm(end - start))
    if length < 1e-6:
        raise SelfDenoiseError("the profile line has zero length; draw a longer line.")
    count = int(np.ceil(length)) + 1
    fractions = np.linspace(0.0, 1.0, count)
    coordinates = start[:, None] + (end - start)[:, None] * fractions[None, :]
    data = np.asarray(base_data(layer), dtype=np.float32)
    values = ndimage.map_coordinates(data, coordinates, order=1, mode="nearest")
    return fractions * length, values
