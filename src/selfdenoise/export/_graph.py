"""Whole-image graphs of a trained model: ONNX and TorchScript files.

Both files hold :class:`selfdenoise.nets.unet.ImageDenoiser`: input ``raw`` of shape
``(B, C, *spatial)`` (float32, spatial axes ``YX`` or ``ZYX``), output ``denoised`` of the same
shape. The model's per-channel normalisation and its inverse are part of the graph, so the
input is the raw image. Batch and spatial sizes are dynamic; every spatial side must be a
multiple of the network's size multiple ``2**depth`` (pad the image, e.g. by reflection, and
crop the result). Unlike :meth:`selfdenoise.Denoiser.predict` the graph does not tile.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import SelfDenoiseError

if TYPE_CHECKING:
    from ..api import Denoiser

ONNX_OPSET = 17
"""ONNX opset of exported graphs (onnxruntime >= 1.14 runs it)."""


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """What an exported graph looks like from outside."""

    ndim: int
    channels: int
    size_multiple: int
    receptive_radius: int
    fold_channels: bool
    offset: list[float]
    scale: list[float]

    @property
    def spatial_axes(self) -> str:
        return "ZYX"[-self.ndim :]


def graph_spec(denoiser: Denoiser) -> GraphSpec:
    """Channels, sizes and normalisation of ``denoiser``'s exported graph."""
    from ..nets import receptive_radius, size_multiple

    if not denoiser.is_trained:
        raise SelfDenoiseError("the model is not trained yet; train or load one before exporting.")
    config = denoiser.config
    normaliser = denoiser.normaliser
    fold = not config.channels_jointly and denoiser.in_channels == 1
    channels = len(normaliser.offset) if fold else int(denoiser.in_channels or 1)
    offset, scale = list(normaliser.offset), list(normaliser.scale)
    if len(offset) == 1 and channels > 1:
        offset, scale = offset * channels, scale * channels
    return GraphSpec(
        ndim=config.ndim,
        channels=channels,
        size_multiple=size_multiple(config.network),
        receptive_radius=receptive_radius(config.network, config.ndim),
        fold_channels=fold,
        offset=[float(v) for v in offset],
        scale=[float(v) for v in scale],
    )


def architecture_kwargs(denoiser: Denoiser) -> dict[str, Any]:
    """Keyword arguments of :class:`~selfdenoise.nets.unet.ImageDenoiser`, without normalisation."""
    spec = graph_spec(denoiser)
    return {
        "ndim": spec.ndim,
        "channels": spec.channels,
        "network": dataclasses.asdict(denoiser.config.network),
        "fold_channels": spec.fold_channels,
    }


def image_denoiser(denoiser: Denoiser, normalise: bool):
    """The model as a CPU :class:`~selfdenoise.nets.unet.ImageDenoiser` in eval mode.

    With ``normalise`` the graph takes raw images; without, normalised ones.
    """
    from ..nets.unet import ImageDenoiser

    spec = graph_spec(denoiser)
    extra = {"offset": spec.offset, "scale": spec.scale} if normalise else {}
    module = ImageDenoiser(**architecture_kwargs(denoiser), **extra)
    state = {k: v.detach().cpu() for k, v in denoiser.network.state_dict().items()}
    module.unet.load_state_dict(state)
    return module.eval()


def example_input(spec: GraphSpec, sides: int = 2):
    """A random ``(1, C, *spatial)`` tensor, ``sides`` size multiples per spatial axis."""
    import torch

    generator = torch.Generator().manual_seed(0)
    shape = (1, spec.channels) + (sides * spec.size_multiple,) * spec.ndim
    return torch.randn(shape, generator=generator)


@contextmanager
def _quiet_tracing():
    """Silence tracer warnings about the U-Net's shape checks (they hold for valid inputs)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _target(path: str | Path, suffix: str) -> Path:
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(suffix)
    if not path.parent.is_dir():
        raise SelfDenoiseError(f"cannot write '{path}': folder '{path.parent}' does not exist.")
    return path


def write_torchscript(module, spec: GraphSpec, path: Path) -> None:
    """Trace ``module`` (an :class:`ImageDenoiser`) and save it as TorchScript."""
    import torch

    with _quiet_tracing(), torch.no_grad():
        traced = torch.jit.trace(module, example_input(spec), check_trace=False)
    try:
        traced.save(str(path))
    except (OSError, RuntimeError) as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {exc}") from None


def write_onnx(module, spec: GraphSpec, path: Path) -> None:
    """Export ``module`` (an :class:`ImageDenoiser`) to ONNX with dynamic batch and spatial sizes."""
    import torch

    dynamic = {0: "batch", **{2 + i: axis.lower() for i, axis in enumerate(spec.spatial_axes)}}
    with _quiet_tracing(), torch.no_grad():
        try:
            # The TorchScript-based exporter: a plain CNN needs nothing more, and it is an
            # order of magnitude faster than the torch.export-based one (which also needs
            # onnxscript).
            torch.onnx.export(
                module,
                (example_input(spec),),
                str(path),
                dynamo=False,
                input_names=["raw"],
                output_names=["denoised"],
                dynamic_axes={"raw": dynamic, "denoised": dynamic},
                opset_version=ONNX_OPSET,
            )
        except OSError as exc:
            raise SelfDenoiseError(f"cannot write '{path}': {exc}") from None


def export_torchscript(denoiser: Denoiser, path: str | Path) -> Path:
    """Write the model as a TorchScript file that denoises raw images.

    Parameters
    ----------
    denoiser : Denoiser
        A trained model.
    path : path
        Target file (``.pt`` is appended when the name has no suffix).

    Returns
    -------
    Path
        The file written. Load it with ``torch.jit.load(path)``; call it on a float32 tensor
        ``(B, C, *spatial)`` (spatial ``YX`` or ``ZYX``, each side a multiple of
        ``2**depth``, the network's size multiple) to get the denoised image of the same shape.
    """
    path = _target(path, ".pt")
    write_torchscript(image_denoiser(denoiser, normalise=True), graph_spec(denoiser), path)
    return path


def export_onnx(denoiser: Denoiser, path: str | Path) -> Path:
    """Write the model as an ONNX file that denoises raw images.

    Parameters
    ----------
    denoiser : Denoiser
        A trained model.
    path : path
        Target file (``.onnx`` is appended when the name has no suffix).

    Returns
    -------
    Path
        The file written: input ``raw``, output ``denoised``, both float32
        ``(batch, C, *spatial)`` with dynamic batch and spatial sizes; each spatial side must be
        a multiple of ``2**depth`` (the network's size multiple). Opset :data:`ONNX_OPSET`.
    """
    path = _target(path, ".onnx")
    write_onnx(image_denoiser(denoiser, normalise=True), graph_spec(denoiser), path)
    return path
