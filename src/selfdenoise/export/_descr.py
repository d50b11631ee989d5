"""The ``bioimageio.spec`` model description (spec 0.5) of an exported package."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import SelfDenoiseError
from ._citations import CITATIONS
from ._graph import ONNX_OPSET, GraphSpec, architecture_kwargs
from ._sample import tiling_geometry

if TYPE_CHECKING:
    from ..api import Denoiser

CONFIG_KEY = "selfdenoise"
"""Key of this package's model description in the BMZ ``config`` section."""

INPUT_ID, OUTPUT_ID = "raw", "denoised"


def _channel_kwargs(values: Sequence[float], scalar_cls, along_cls, **fields):
    """Scalar kwargs for one channel, per-channel lists along the channel axis otherwise."""
    if len(values) == 1:
        return scalar_cls(**{k: v[0] for k, v in fields.items()})
    return along_cls(axis="channel", **fields)


def preprocessing(spec: GraphSpec, kind: str) -> list:
    """Cast to float32, then ``(x - offset) / scale`` per channel."""
    from bioimageio.spec.model import v0_5 as bmz

    steps = [bmz.EnsureDtypeDescr(kwargs=bmz.EnsureDtypeKwargs(dtype="float32"))]
    if kind == "meanstd":
        kwargs = _channel_kwargs(
            spec.offset,
            bmz.FixedZeroMeanUnitVarianceKwargs,
            bmz.FixedZeroMeanUnitVarianceAlongAxisKwargs,
            mean=spec.offset,
            std=spec.scale,
        )
        return [*steps, bmz.FixedZeroMeanUnitVarianceDescr(kwargs=kwargs)]
    gain = [1.0 / s for s in spec.scale]
    offset = [-o / s for o, s in zip(spec.offset, spec.scale, strict=True)]
    return steps + _scale_linear(gain, offset)


def postprocessing(spec: GraphSpec) -> list:
    """``x * scale + offset`` per channel: the inverse of the pre-processing."""
    return _scale_linear(spec.scale, spec.offset)


def _scale_linear(gain: list[float], offset: list[float]) -> list:
    from bioimageio.spec.model import v0_5 as bmz

    if all(g == 1.0 for g in gain) and all(o == 0.0 for o in offset):
        return []  # the identity; the spec rejects it as redundant
    kwargs = _channel_kwargs(
        gain, bmz.ScaleLinearKwargs, bmz.ScaleLinearAlongAxisKwargs, gain=gain, offset=offset
    )
    return [bmz.ScaleLinearDescr(kwargs=kwargs)]


def _axes(spec: GraphSpec, output: bool) -> list:
    from bioimageio.spec.model import v0_5 as bmz

    halo, min_side = tiling_geometry(spec)
    names = [f"channel{c}" for c in range(spec.channels)]
    axes = [bmz.BatchAxis(), bmz.ChannelAxis(channel_names=names)]
    for letter in spec.spatial_axes.lower():
        if output:
            size = bmz.SizeReference(tensor_id=bmz.TensorId(INPUT_ID), axis_id=bmz.AxisId(letter))
            axes.append(bmz.SpaceOutputAxisWithHalo(id=bmz.AxisId(letter), size=size, halo=halo))
        else:
            size = bmz.ParameterizedSize(min=min_side, step=spec.size_multiple)
            axes.append(bmz.SpaceInputAxis(id=bmz.AxisId(letter), size=size))
    return axes


def _weights(denoiser: Denoiser, files: dict[str, Path]):
    import torch
    from bioimageio.spec.model import v0_5 as bmz

    version = bmz.Version(torch.__version__.split("+")[0])
    architecture = bmz.ArchitectureFromFileDescr(
        source=files["architecture"], callable="ImageDenoiser", kwargs=architecture_kwargs(denoiser)
    )
    return bmz.WeightsDescr(
        pytorch_state_dict=bmz.PytorchStateDictWeightsDescr(
            source=files["pytorch_state_dict"], architecture=architecture, pytorch_version=version
        ),
        torchscript=bmz.TorchscriptWeightsDescr(
            source=files["torchscript"], pytorch_version=version, parent="pytorch_state_dict"
        ),
        onnx=bmz.OnnxWeightsDescr(
            source=files["onnx"], opset_version=ONNX_OPSET, parent="pytorch_state_dict"
        ),
    )


def model_descr(
    denoiser: Denoiser,
    spec: GraphSpec,
    files: dict[str, Path],
    metadata: dict,
    *,
    name: str | None,
    authors: Sequence[str] | None,
    description: str | None,
    license: str,
):
    """Build and validate the ``ModelDescr``; a one-line error when it is invalid."""
    from bioimageio.spec.model import v0_5 as bmz
    from pydantic import ValidationError

    method = denoiser.config.method
    try:
        inputs = bmz.InputTensorDescr(
            id=bmz.TensorId(INPUT_ID),
            description="raw image",
            axes=_axes(spec, output=False),
            test_tensor=bmz.FileDescr(source=files["test_input"]),
            preprocessing=preprocessing(spec, denoiser.normaliser.kind),
        )
        outputs = bmz.OutputTensorDescr(
            id=bmz.TensorId(OUTPUT_ID),
            description="denoised image",
            axes=_axes(spec, output=True),
            test_tensor=bmz.FileDescr(source=files["test_output"]),
            postprocessing=postprocessing(spec),
        )
        return bmz.ModelDescr(
            name=name or f"napari-selfdenoise {method} {spec.ndim}D",
            description=description
            or f"Self-supervised {method} denoiser for {spec.ndim}D images (napari-selfdenoise).",
            authors=[bmz.Author(name=a) for a in (authors or ["napari-selfdenoise user"])],
            cite=[bmz.CiteEntry(**CITATIONS[method])],
            license=license,
            tags=["denoising", "self-supervised", method, f"{spec.ndim}d", "napari-selfdenoise"],
            covers=[bmz.FileDescr(source=files["cover"])],
            documentation=bmz.FileDescr(source=files["readme"]),
            inputs=[inputs],
            outputs=[outputs],
            weights=_weights(denoiser, files),
            config={CONFIG_KEY: metadata},
        )
    except ValidationError as exc:
        raise
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise SelfDenoiseError(
            f"the model package would be invalid ({where}: {first.get('msg', exc)}); "
            "check the name, authors and licence."
        ) from None
