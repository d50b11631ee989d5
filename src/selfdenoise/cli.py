"""The ``selfdenoise`` command line: train, predict, compare, demo.

Every user error exits with status 2 and one line ``error: <what is wrong and what to do>``
on stderr; Ctrl-C exits with 130 (``train`` first saves the best weights so far). Output
paths are checked before any work starts, an output may never be one of the inputs, and
every file is written atomically. Under ``torchrun`` the ``train`` command trains with
DistributedDataParallel; rank 0 prints and saves.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from ._cli.apply import cmd_compare, cmd_demo, cmd_predict
from ._cli.arg_types import (
    DEVICE_CHOICES,
    device_name,
    int_tuple,
    output_dtype,
    positive_int,
    weight_or_auto,
)
from ._cli.common import masking_methods, show_warning
from ._cli.export import add_export_parser, cmd_export
from ._cli.train import STRUCT_AXES, cmd_train
from ._errors import SelfDenoiseError
from ._version import __version__
from .config import (
    AMP_MODES,
    DEFAULT_METHOD,
    DEMO_METHODS,
    NEIGHBOUR_PAIRS,
    cpu_batch,
    make_config,
)
from .registry import get_method, method_names


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other CLI error."""

    def error(self, message: str):
        hint = f"see '{self.prog} --help'"
        self.exit(2, f"error: {' '.join(message.split())}; {hint}\n")


def _methods_help() -> str:
    """One line per self-supervised method, the default marked (from the registry)."""
    lines = ["methods:"]
    for name in method_names(self_supervised=True):
        mark = " (default)" if name == DEFAULT_METHOD else ""
        lines.append(f"  {name}{mark}: {get_method(name).summary}")
    return "\n".join(lines)


def _default(setting: str, section: str = "training", axes: str = "YX") -> str:
    """The config default of ``setting`` for each method, said once when they agree."""
    values = {
        name: getattr(getattr(make_config(name, axes), section), setting)
        for name in method_names(self_supervised=True)
    }
    shown = {
        name: f"{value:g}" if isinstance(value, float) else str(value)
        for name, value in values.items()
    }
    common = max(set(shown.values()), key=list(shown.values()).count)
    others = [f"{name} {value}" for name, value in shown.items() if value != common]
    return f"default {common}" + (f"; {', '.join(others)}" if others else "")


def _methods_with(step: str) -> str:
    """Methods whose models run a post-prediction ``step`` by default (from the config)."""
    names = [name for name in method_names() if getattr(make_config(name).tiling, step)]
    return ", ".join(names) or "none"


def _reporting(command: argparse.ArgumentParser) -> None:
    """--quiet and --log-json; by default a progress bar on a terminal, else plain lines."""
    report = command.add_mutually_exclusive_group()
    report.add_argument("--quiet", action="store_true", help="print only the summary")
    report.add_argument(
        "--log-json",
        action="store_true",
        help="print one JSON object per progress report and event on stdout (for pipelines)",
    )


def _add_training_settings(train: argparse.ArgumentParser) -> None:
    """Budget, sampling, optimiser and masking options of ``train`` (defaults from config)."""
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help=f"number of epochs ({_default('epochs')})")
    budget.add_argument("--minutes", type=float, help="wall-clock training budget in minutes")
    budget.add_argument("--steps", type=int, help="number of optimiser steps")
    train.add_argument(
        "--steps-per-epoch",
        type=int,
        help=f"steps between validations ({_default('steps_per_epoch')})",
    )
    train.add_argument("--patch", type=int_tuple, help="patch shape, e.g. 64,64 or 16,64,64")
    train.add_argument(
        "--batch",
        type=int,
        help=(
            "patches per step (default: chosen for the device: "
            f"{cpu_batch(2)} in 2D and {cpu_batch(3)} in 3D on the CPU, "
            "filling the free memory on a CUDA GPU)"
        ),
    )
    train.add_argument("--lr", type=float, help=f"learning rate ({_default('learning_rate')})")
    train.add_argument(
        "--lambda-inv",
        type=weight_or_auto,
        help=(
            "Noise2Same invariance weight, or 'auto' "
            f"(default {make_config('noise2same').lambda_inv})"
        ),
    )
    train.add_argument(
        "--regulariser-weight",
        type=weight_or_auto,
        help=(
            "Neighbor2Neighbor regulariser weight at the end of its ramp, or 'auto' "
            f"(default {make_config('neighbor2neighbor').regulariser_weight}: 0 for "
            "photon-limited data, else 2 as in the paper)"
        ),
    )
    train.add_argument(
        "--neighbour-pairs",
        choices=("auto", *NEIGHBOUR_PAIRS),
        help=(
            "Neighbor2Neighbor training pairs: the two pixels of each 2x2 cell are neighbours in "
            "Y or X ('adjacent') or across the diagonal ('diagonal', for noise shared by "
            f"neighbouring pixels) (default {make_config('neighbor2neighbor').neighbour_pairs}: "
            "diagonal for photon-limited data, camera captures in practice)"
        ),
    )
    train.add_argument(
        "--fraction",
        type=float,
        help=f"masked fraction of pixels ({_default('fraction', 'masking')})",
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seed for sampling, masks and weights (default 0)"
    )
    train.add_argument(
        "--device",
        default="auto",
        type=device_name,
        metavar="DEVICE",
        help=f"where to train: {DEVICE_CHOICES} (default auto: CUDA, then Apple MPS, then CPU)",
    )
    train.add_argument(
        "--amp",
        choices=AMP_MODES,
        help=(
            f"mixed precision ({_default('amp')}: bf16 on GPUs that have it, else fp16; bf16 on "
            "CPUs with AMX, and in 2D on CPUs with AVX-512 BF16; float32 on other CPUs; "
            "off = float32 everywhere)"
        ),
    )
    train.add_argument(
        "--struct-axis",
        choices=sorted(STRUCT_AXES),
        help=(
            "structN2V for stripe or scan-line noise: also mask a line along this axis "
            "(masking methods only: " + ", ".join(masking_methods()) + ")"
        ),
    )
    train.add_argument(
        "--struct-span",
        type=int,
        help=f"length of the structN2V line in pixels ({_default('struct_span', 'masking')})",
    )


def _add_train_parser(commands) -> None:
    """The ``train`` sub-command."""
    self_supervised = list(method_names(self_supervised=True))
    train = commands.add_parser(
        "train",
        help="train a model on noisy images",
        description="Train a denoiser on noisy images.\n\n" + _methods_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="noisy images (.tif, .npy, .zarr, .png, ...)"
    )
    train.add_argument(
        "--axes", help="axes of the inputs, e.g. YX, ZYX, TYX, CZYX (default: from the file)"
    )
    train.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=self_supervised,
        help=f"training objective (default {DEFAULT_METHOD}; see the list above)",
    )
    train.add_argument("--out", required=True, help="model file to write (.safetensors)")
    _add_training_settings(train)
    train.add_argument("--validation", help="image to compute the validation loss on")
    train.add_argument(
        "--series", type=positive_int, help="image series of multi-series TIFF inputs (default 0)"
    )
    train.add_argument(
        "--checkpoint-dir", help="folder for resumable checkpoints (with --checkpoint-every)"
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        help="write DIR/checkpoint.pt every N steps (with --checkpoint-dir)",
    )
    train.add_argument("--resume", help="checkpoint to continue training from")
    _reporting(train)


def _add_predict_parser(commands) -> None:
    """The ``predict`` sub-command."""
    predict = commands.add_parser(
        "predict",
        help="denoise an image with a trained model",
        description="Denoise an image of any size with tiled prediction.",
    )
    predict.add_argument("model", metavar="MODEL", help="model file from 'selfdenoise train'")
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="images to denoise (.tif, .npy, .zarr, .png, ...); quote a pattern like 'raw/*.tif'",
    )
    where = predict.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--out",
        help=(
            "output image for one INPUT (.tif, .ome.tif, .npy, .zarr, .ome.zarr with a "
            "pyramid); never one of the inputs"
        ),
    )
    where.add_argument(
        "--out-dir",
        help=(
            "folder for the outputs of several inputs, named like them (TIFF for formats "
            "not written); a bad file is reported and skipped, and the exit status is 1"
        ),
    )
    predict.add_argument(
        "--series", type=positive_int, help="image series of a multi-series TIFF (default 0)"
    )
    predict.add_argument("--axes", help="axes of INPUT (default: from the file or the model)")
    predict.add_argument("--tile", type=int_tuple, help="tile shape, e.g. 256,256 (default: auto)")
    predict.add_argument(
        "--overlap", type=int_tuple, help="halo per side, e.g. 16,16 (default: receptive field)"
    )
    predict.add_argument("--batch", type=int, help="tiles per forward pass")
    predict.add_argument("--tta", action="store_true", help="average 8 flips/rotations (8x slower)")
    predict.add_argument(
        "--restore-detail",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "blend each pixel with its noisy value where the output lost detail (a local "
            "Wiener step; for white noise). Default: the model's setting, on for "
            f"{_methods_with('restore_detail')}"
        ),
    )
    predict.add_argument(
        "--collaborative-filter",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "filter the noisy image again, the output as the pilot: similar patches grouped "
            "and shrunk together (a collaborative Wiener step, plane by plane). Default: the "
            f"model's setting, on for {_methods_with('collaborative_filter')}"
        ),
    )
    predict.add_argument(
        "--dtype",
        default="float32",
        type=output_dtype,
        help="output dtype: float32 (default), 'input' (the input's, clipped) or e.g. uint16",
    )
    predict.add_argument(
        "--device",
        type=device_name,
        metavar="DEVICE",
        help=f"where to predict: {DEVICE_CHOICES} (default: the model's device, or auto)",
    )
    predict.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help=(
            "predict on a dask.distributed cluster, e.g. tcp://host:8786 (needs the 'dask' "
            "extra; zarr outputs are written by the workers, so they need a shared folder)"
        ),
    )
    _reporting(predict)


def _add_compare_parser(commands) -> None:
    """The ``compare`` sub-command."""
    compare = commands.add_parser(
        "compare",
        help="PSNR, SSIM, edge and noise readouts of denoised images",
        description="Compare denoised images with a clean reference and/or the noisy input.",
    )
    compare.add_argument("candidates", nargs="+", metavar="CANDIDATE", help="denoised images")
    compare.add_argument("--reference", help="clean image (enables PSNR and SSIM)")
    compare.add_argument("--noisy", help="noisy input (enables method-noise readouts)")
    compare.add_argument(
        "--data-range",
        type=float,
        help="L for PSNR/SSIM (default: the reference's dtype range for integer data, e.g. "
        "255 or 65535, else its max - min; e.g. 4095 for 12-bit data in 16-bit files)",
    )
    compare.add_argument("--json", action="store_true", help="print the table as JSON")
    compare.add_argument("--csv", help="also write the table to this CSV file")
    compare.add_argument(
        "--explain",
        action="store_true",
        help="print under the table what each row means and which way is better",
    )


def _add_demo_parser(commands) -> None:
    """The ``demo`` sub-command."""
    self_supervised = list(method_names(self_supervised=True))
    demo = commands.add_parser(
        "demo",
        help="train and apply denoisers on a built-in sample, print the metrics",
        description=(
            "Headless demo: noisy sample, about a minute of training per method, tiled "
            "prediction, metrics next to NL-means, TIFFs."
        ),
    )
    demo.add_argument("--out", default="demo_out", help="folder for the TIFFs and the model")
    demo.add_argument(
        "--minutes", type=float, default=1.0, help="training budget per method (default 1)"
    )
    demo.add_argument(
        "--method",
        dest="methods",
        nargs="+",
        default=list(DEMO_METHODS),
        choices=self_supervised,
        help=f"methods to train, one after the other (default: {' '.join(DEMO_METHODS)})",
    )
    demo.add_argument(
        "--steps", type=positive_int, help="train each method this many steps, not --minutes"
    )
    demo.add_argument(
        "--all-metrics",
        action="store_true",
        help="print every readout (default: PSNR, SSIM and edge preservation)",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the sample and the training")
    demo.add_argument(
        "--device",
        default="auto",
        type=device_name,
        metavar="DEVICE",
        help=f"where to train: {DEVICE_CHOICES} (default auto)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    parser = _Parser(
        prog="selfdenoise",
        description=(
            "Self-supervised denoising of 2D/3D images. Default method: "
            f"{DEFAULT_METHOD}; others: {', '.join(m for m in method_names(self_supervised=True) if m != DEFAULT_METHOD)}."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_train_parser(commands)
    _add_predict_parser(commands)
    _add_compare_parser(commands)
    _add_demo_parser(commands)
    add_export_parser(commands)
    return parser


COMMANDS = {
    "train": cmd_train,
    "predict": cmd_predict,
    "compare": cmd_compare,
    "demo": cmd_demo,
    "export": cmd_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``selfdenoise`` command."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return COMMANDS[args.command](args)
        except (SelfDenoiseError, FloatingPointError) as exc:  # diverged training: one line too
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        except MemoryError:
            print("error: out of memory; use smaller --tile, --batch or --patch.", file=sys.stderr)
            return 2
        except OSError as exc:
            from .io._files import one_line

            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
