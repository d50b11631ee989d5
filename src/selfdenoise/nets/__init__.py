"""Networks (torch): one N-dimensional U-Net for 2D and 3D images.

See :mod:`selfdenoise.nets.unet` for the architecture and its options.
"""

from ._build import MAX_PARAMETERS, architecture_class, build_network
from ._cost import count_parameters, flops_per_pixel
from .unet import ImageDenoiser, UNet, receptive_radius, size_multiple

__all__ = [
    "MAX_PARAMETERS",
    "ImageDenoiser",
    "UNet",
    "architecture_class",
    "build_network",
    "count_parameters",
    "flops_per_pixel",
    "receptive_radius",
    "size_multiple",
]
