"""BioImage Model Zoo packages (model spec 0.5), built with ``bioimageio.spec``.

A package holds:

- weights in three formats that all map a *normalised* image to a normalised denoised one:
  ``pytorch_state_dict`` (``weights.pt``: the U-Net's tensors saved with ``torch.save``, which
  bioimageio tools read with ``torch.load(weights_only=True)``; the architecture is
  ``selfdenoise_unet.py``, this package's U-Net module, which imports only torch),
  ``torchscript`` and ``onnx`` (converted from it);
- the input ``raw`` and output ``denoised`` (axes batch, channel, z?, y, x), with the model's
  normalisation as pre-processing (``fixed_zero_mean_unit_variance`` for mean/std statistics,
  ``scale_linear`` for percentile ones) and its inverse as post-processing (``scale_linear``);
- spatial sizes ``min + n * 2**depth`` and an output halo (the network's receptive radius,
  rounded up) for tiled prediction;
- a test input/output pair computed with :meth:`selfdenoise.Denoiser.predict`, a cover image,
  a README, the method's paper, and under ``config.selfdenoise`` this package's own model
  description (settings, normalisation, history) so that :func:`load_bmz` can read it back.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import SelfDenoiseError
from ._citations import CITATIONS
from ._descr import CONFIG_KEY, INPUT_ID, OUTPUT_ID, model_descr
from ._graph import (
    ONNX_OPSET,
    GraphSpec,
    graph_spec,
    image_denoiser,
    write_onnx,
    write_torchscript,
)
from ._sample import (
    fit_test_shape,
    predict_test_output,
    sample_canonical,
    tiling_geometry,
    write_cover,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..api import Denoiser

ARCHITECTURE_FILE = "selfdenoise_unet.py"


def require_bioimageio() -> None:
    """Raise a one-line error when the ``bmz`` extra is missing."""
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise SelfDenoiseError(
            "writing or reading BioImage Model Zoo packages needs bioimageio.spec; "
            "install it with: pip install 'napari-selfdenoise[bmz]'."
        ) from None


def export_bmz(
    denoiser: Denoiser,
    path: str | os.PathLike,
    *,
    sample: Any = None,
    sample_axes: str | None = None,
    name: str | None = None,
    authors: Sequence[str] | None = None,
    description: str | None = None,
    license: str = "CC-BY-4.0",
) -> Path:
    """Write a BioImage Model Zoo package (spec 0.5 zip) of a trained model.

    Parameters
    ----------
    denoiser : Denoiser
        A trained model.
    path : path
        The ``.zip`` to write (``.zip`` is appended when the name has no suffix); replaced
        if it exists.
    sample : array-like, optional
        An image to cut the test input from (its first sample, cropped or mirror-padded to a
        valid size). Without it a synthetic image in the training intensity range is used.
    sample_axes : str, optional
        Axes of ``sample``; default: the model's axes.
    name, description : str, optional
        Shown by BMZ tools; defaults name the method and dimensionality.
    authors : sequence of str, optional
        Names of the people who trained the model.
    license : str
        SPDX identifier of the weights' licence.

    Returns
    -------
    Path
        The package written.
    """
    require_bioimageio()
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".zip")
    if not path.parent.is_dir():
        raise SelfDenoiseError(f"cannot write '{path}': folder '{path.parent}' does not exist.")
    spec = graph_spec(denoiser)
    with tempfile.TemporaryDirectory(prefix="selfdenoise-bmz-") as folder:
        files = _write_files(denoiser, spec, Path(folder), sample, sample_axes)
        metadata = _bundle_metadata(denoiser, Path(folder))
        descr = model_descr(
            denoiser,
            spec,
            files,
            metadata,
            name=name,
            authors=authors,
            description=description,
            license=license,
        )
        _save_package(descr, path)
    return path


def _write_files(
    denoiser: Denoiser, spec: GraphSpec, folder: Path, sample, sample_axes
) -> dict[str, Path]:
    import torch

    from ..nets import unet

    _, min_side = tiling_geometry(spec)
    test_input = fit_test_shape(
        sample_canonical(denoiser, spec, sample, sample_axes), spec, min_side
    )
    test_output = predict_test_output(denoiser, spec, test_input).astype(np.float32)
    files = {
        "test_input": folder / "test_input.npy",
        "test_output": folder / "test_output.npy",
        "cover": folder / "cover.png",
        "readme": folder / "README.md",
        "architecture": folder / ARCHITECTURE_FILE,
        "pytorch_state_dict": folder / "weights.pt",
        "torchscript": folder / "weights_torchscript.pt",
        "onnx": folder / "weights.onnx",
    }
    np.save(files["test_input"], test_input, allow_pickle=False)
    np.save(files["test_output"], test_output, allow_pickle=False)
    write_cover(files["cover"], test_input, test_output)
    shutil.copyfile(unet.__file__, files["architecture"])
    module = image_denoiser(denoiser, normalise=False)
    torch.save(
        {k: v.contiguous() for k, v in module.state_dict().items()}, files["pytorch_state_dict"]
    )
    write_torchscript(module, spec, files["torchscript"])
    write_onnx(module, spec, files["onnx"])
    files["readme"].write_text(_readme(denoiser, spec), encoding="utf-8")
    return files


def _bundle_metadata(denoiser: Denoiser, folder: Path) -> dict:
    """The model description :meth:`Denoiser.save` writes, as plain JSON values."""
    from ..io import load_bundle

    saved = denoiser.save(folder / "model.safetensors")
    _, metadata = load_bundle(saved)
    saved.unlink()
    return json.loads(json.dumps(metadata))


def _readme(denoiser: Denoiser, spec: GraphSpec) -> str:
    from .._version import __version__

    halo, min_side = tiling_geometry(spec)
    config = denoiser.config
    steps = denoiser.history[-1]["step"] if denoiser.history else 0
    return f"""# Self-supervised denoiser ({config.method}, {spec.ndim}D)

Trained with napari-selfdenoise {__version__} on images with axes `{config.axes}`
({steps} steps). Method: {CITATIONS[config.method]["text"]}

- Input `{INPUT_ID}`: float32, axes batch, channel ({spec.channels}),
  {", ".join(spec.spatial_axes.lower())}; each spatial side is {min_side} + n * {spec.size_multiple}.
- Pre-processing: the training normalisation `(x - offset) / scale` per channel
  (offset {spec.offset}, scale {spec.scale}); post-processing undoes it.
- Output `{OUTPUT_ID}`: the denoised image, same shape. Halo for tiling: {halo} pixels per side
  (the network's receptive radius is {spec.receptive_radius}).
- Weights: `pytorch_state_dict` (architecture `{ARCHITECTURE_FILE}`, class `ImageDenoiser`),
  `torchscript` and `onnx` (opset {ONNX_OPSET}), all on normalised images.
- `config.{CONFIG_KEY}` holds the training settings; `selfdenoise predict model.zip ...`
  and `Denoiser.load("model.zip")` read the package back.
"""


def _save_package(descr, path: Path) -> None:
    from bioimageio.spec import save_bioimageio_package

    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.zip")
    try:
        save_bioimageio_package(descr, output_path=temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
