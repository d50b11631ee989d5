"""``selfdenoise export``: a trained model as a BioImage Model Zoo package, ONNX or TorchScript."""

from __future__ import annotations

import argparse

from .._errors import SelfDenoiseError
from .common import given, read, say

EXPORT_FORMATS = ("bmz", "onnx", "torchscript")
"""``--format`` choices (kept here so that building the parser imports no torch)."""


def add_export_parser(commands) -> None:
    """The ``export`` sub-command's arguments."""
    export = commands.add_parser(
        "export",
        help="export a model as a BioImage Model Zoo package, ONNX or TorchScript",
        description=(
            "Write a trained model for other tools: a BioImage Model Zoo package (.zip, for "
            "bioimageio.core, deepImageJ, ilastik, QuPath), or an ONNX / TorchScript file that "
            "takes the raw image (B, C, [Z,] Y, X) and returns the denoised one."
        ),
    )
    export.add_argument("model", metavar="MODEL", help="model file (.safetensors)")
    export.add_argument(
        "--format", dest="fmt", default="bmz", choices=EXPORT_FORMATS, help="default bmz"
    )
    export.add_argument("--out", required=True, help="file to write (.zip, .onnx, .pt)")
    export.add_argument("--sample", help="bmz: image to cut the test input from (.tif, .npy)")
    export.add_argument("--sample-axes", help="bmz: axes of --sample (default: the model's)")
    export.add_argument("--name", help="bmz: model name")
    export.add_argument("--author", action="append", help="bmz: author name (repeatable)")
    export.add_argument("--license", help="bmz: licence of the weights (default CC-BY-4.0)")


def _bmz_options(args: argparse.Namespace) -> dict:
    """Package settings from the bmz-only flags (refused with another format)."""
    bmz_only = {
        "--sample": args.sample,
        "--sample-axes": args.sample_axes,
        "--name": args.name,
        "--author": args.author,
        "--license": args.license,
    }
    flags = [flag for flag, value in bmz_only.items() if value]
    if args.fmt != "bmz":
        if flags:
            raise SelfDenoiseError(f"{', '.join(flags)} only apply to --format bmz.")
        return {}
    options = {"name": args.name, "authors": args.author, "license": args.license}
    options = {k: v for k, v in options.items() if v}
    if args.sample:
        image = read(args.sample)
        known = image.axes if image.axes and len(image.axes) == image.data.ndim else None
        options.update(sample=image.data, sample_axes=args.sample_axes or known)
    return options


def cmd_export(args: argparse.Namespace) -> int:
    from ..api import Denoiser
    from ..export import export_model
    from ..io import check_output_path
    from ..nets import size_multiple

    check_output_path(args.out, [args.model, *given(args.sample)], option="--out")
    options = _bmz_options(args)
    model = Denoiser.load(args.model, device="cpu")
    path = export_model(model, args.out, args.fmt, **options)
    spatial = ", ".join("ZYX"[-model.config.ndim :])
    say(
        f"wrote {path} ({args.fmt}; input (batch, channel, {spatial}), spatial sides multiples "
        f"of {size_multiple(model.config.network)})"
    )
    return 0
