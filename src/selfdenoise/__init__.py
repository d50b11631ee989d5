"""Self-supervised denoising for 2D/3D microscopy and CT images.

Importing this package is cheap: torch is imported only when a model is built, trained or
applied, so that napari starts fast with the plugin installed.
"""

from ._errors import SelfDenoiseError
from ._version import __version__

__all__ = ["Denoiser", "SelfDenoiseError", "__version__"]


def __getattr__(name: str):
    if name == "Denoiser":
        from .api import Denoiser

        return Denoiser
    raise AttributeError(f"module 'selfdenoise' has no attribute {name!r}")
