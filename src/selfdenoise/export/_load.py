"""Reading back BioImage Model Zoo packages written by :func:`~selfdenoise.export.export_bmz`."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import SelfDenoiseError
from ._bmz import require_bioimageio
from ._descr import CONFIG_KEY

if TYPE_CHECKING:
    from ..api import Denoiser

_PREFIX = "unet."


def read_bmz(path: str | Path) -> tuple[dict, dict]:
    """The U-Net state dict and the model description stored in a package we wrote.

    ``bioimageio.spec`` validates the package and checks every file against its SHA-256;
    the ``pytorch_state_dict`` weights are read with ``torch.load(weights_only=True)``.

    Raises
    ------
    SelfDenoiseError
        If the file is missing, is not a BMZ package written by napari-selfdenoise, or is
        damaged (a file does not match its checksum).
    """
    import torch

    require_bioimageio()
    from bioimageio.spec import load_description

    path = Path(path)
    if not path.is_file():
        raise SelfDenoiseError(f"cannot read '{path}': no such file.")
    try:
        descr = load_description(path, perform_io_checks=True)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise SelfDenoiseError(
            f"'{path}' is not a valid model package ({reason}); choose a .safetensors model "
            "or a .zip exported by napari-selfdenoise."
        ) from None
    if descr.validation_summary.status == "failed" or not hasattr(descr, "weights"):
        raise SelfDenoiseError(f"'{path}' is not a valid model package: {_first_error(descr)}.")
    ours = (descr.config.model_extra or {}).get(CONFIG_KEY)
    weights = descr.weights.pytorch_state_dict
    if not isinstance(ours, dict) or weights is None:
        raise SelfDenoiseError(
            f"'{path}' is a BioImage Model Zoo package but not one written by napari-selfdenoise; "
            "run it with bioimageio.core instead."
        )
    data = weights.get_reader().read()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file whose checksum was rewritten too
        raise SelfDenoiseError(f"cannot read the weights in '{path}': {exc}") from None
    unet = {k[len(_PREFIX) :]: v for k, v in state.items() if k.startswith(_PREFIX)}
    return unet, dict(ours)


def _first_error(descr) -> str:
    for detail in descr.validation_summary.details:
        for error in detail.errors:
            message = " ".join(str(error.msg).split())
            if "SHA256 mismatch" in message:
                name = message.split(" for ")[-1].split(". Expected")[0].split("/")[-1]
                return (
                    f"'{name}' does not match its checksum (damaged or modified); export it again"
                )
            return message[:200]
    return "unknown validation error"


def load_bmz(path: str | Path, device: str | None = None) -> Denoiser:
    """Load a package written by :func:`~selfdenoise.export.export_bmz` as a :class:`Denoiser`.

    Same as ``Denoiser.load(path, device)``.
    """
    from ..api import Denoiser

    return Denoiser.load(path, device=device)
