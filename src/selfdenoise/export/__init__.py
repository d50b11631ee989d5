"""Models that leave this package: BioImage Model Zoo packages, ONNX and TorchScript files.

- :func:`export_onnx` and :func:`export_torchscript` write a graph that takes the raw image
  ``(B, C, *spatial)`` (float32, spatial sides multiples of the network's size multiple) and
  returns the denoised image; the model's normalisation and its inverse are inside the graph.
- :func:`export_bmz` writes a BioImage Model Zoo package (spec 0.5) with ``pytorch_state_dict``,
  ``torchscript`` and ``onnx`` weights, built with ``bioimageio.spec``.
- :func:`load_bmz` reads back a package written by :func:`export_bmz`
  (``Denoiser.load('model.zip')`` does the same).

Importing this module is cheap: torch, onnx and bioimageio are imported when a function runs.
The BMZ and ONNX parts need the ``bmz`` extra (``pip install napari-selfdenoise[bmz]``).
"""

from __future__ import annotations

from ._citations import CITATIONS

__all__ = [
    "CITATIONS",
    "FORMATS",
    "export_bmz",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "load_bmz",
]

FORMATS = ("bmz", "onnx", "torchscript")
"""Export formats, as the CLI and the napari dialog name them."""

_PARTS = {
    "export_onnx": "._graph",
    "export_torchscript": "._graph",
    "export_bmz": "._bmz",
    "load_bmz": "._load",
}


def export_model(denoiser, path, fmt: str, **options):
    """Export ``denoiser`` to ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    ``options`` go to :func:`export_bmz` (``sample``, ``name``, ``authors``, ...); the ONNX
    and TorchScript exports take none. Returns the path written.
    """
    from .._errors import SelfDenoiseError

    if fmt not in FORMATS:
        raise SelfDenoiseError(
            f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}."
        )
    if fmt != "bmz" and options:
        raise SelfDenoiseError(f"the {fmt} export takes no options (got {', '.join(options)}).")
    function = {"bmz": "export_bmz", "onnx": "export_onnx", "torchscript": "export_torchscript"}
    return _call(function[fmt], denoiser, path, **options)


def _call(name: str, *args, **kwargs):
    import importlib

    return getattr(importlib.import_module(_PARTS[name], __name__), name)(*args, **kwargs)


def __getattr__(name: str):
    if name in _PARTS:
        import importlib

        return getattr(importlib.import_module(_PARTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
