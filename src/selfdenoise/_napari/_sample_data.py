"""Sample data under File > Open Sample: noisy images with their clean ground truth.

Nothing is downloaded (see :mod:`selfdenoise.samples`). Each sample adds two layers: the
noisy image (shown) and the clean one (hidden), ready for the Train and Compare widgets.
"""

from __future__ import annotations

from typing import Any

from .. import samples

LayerData = tuple[Any, dict, str]


def _pair(noisy: Any, clean: Any, subject: str, axes: str, description: str) -> list[LayerData]:
    common = {"contrast_limits": (0.0, 1.0), "colormap": "gray"}
    metadata = {"axes": axes, "description": description, "sample": "napari-selfdenoise"}
    return [
        (
            clean,
            {
                **common,
                "name": f"clean {subject}",
                "visible": False,
                "metadata": {**metadata, "kind": "clean"},
            },
            "image",
        ),
        (
            noisy,
            {**common, "name": f"noisy {subject}", "metadata": {**metadata, "kind": "noisy"}},
            "image",
        ),
    ]


def sample_2d() -> list[LayerData]:
    """The camera image (512 x 512) with Poisson-Gaussian noise, and the clean image."""
    noisy, clean = samples.noisy_2d(seed=0)
    return _pair(noisy, clean, "camera", "YX", "scikit-image camera, 20 photons + read noise 0.04")


def sample_3d() -> list[LayerData]:
    """Synthetic nuclei and filaments (32 x 128 x 128) with Poisson-Gaussian noise, and clean."""
    noisy, clean = samples.noisy_3d(seed=0)
    return _pair(
        noisy,
        clean,
        "nuclei 3D",
        "ZYX",
        "synthetic nuclei + filaments, 15 photons + read noise 0.03",
    )
