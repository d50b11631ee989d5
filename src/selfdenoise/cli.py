"""The ``selfdenoise`` command line: train, predict, compare, demo.

Every user error exits with status 2 and one line ``error: <what is wrong and what to do>``.
Under ``torchrun`` the ``train`` command trains with DistributedDataParallel; rank 0 prints
and saves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._errors import SelfDenoiseError
from ._version import __version__
from .config import DEFAULT_METHOD, DEMO_METHODS, DEVICES, make_config
from .registry import get_method, method_names


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,64; got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 64,64; got {text!r}")
    return values


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _print(*args, **kwargs) -> None:
    if _is_main_process():
        print(*args, **kwargs, flush=True)


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    parser = argparse.ArgumentParser(
        prog="selfdenoise",
        description=(
            "Self-supervised denoising of 2D/3D images. Default method: "
            f"{DEFAULT_METHOD}; others: {', '.join(m for m in method_names(self_supervised=True) if m != DEFAULT_METHOD)}."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    self_supervised = list(method_names(self_supervised=True))
    train = commands.add_parser(
        "train",
        help="train a model on noisy images",
        description="Train a denoiser on noisy images.\n\n" + _methods_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="noisy images (.tif, .npy, .zarr)"
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
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help=f"number of epochs ({_default('epochs')})")
    budget.add_argument("--minutes", type=float, help="wall-clock training budget in minutes")
    budget.add_argument("--steps", type=int, help="number of optimiser steps")
    train.add_argument(
        "--steps-per-epoch",
        type=int,
        help=f"steps between validations ({_default('steps_per_epoch')})",
    )
    train.add_argument("--patch", type=_int_tuple, help="patch shape, e.g. 64,64 or 16,64,64")
    train.add_argument(
        "--batch",
        type=int,
        help=(
            f"patches per step ({_default('batch_size')} in 2D, "
            f"{_default('batch_size', axes='ZYX').removeprefix('default ')} in 3D)"
        ),
    )
    train.add_argument("--lr", type=float, help=f"learning rate ({_default('learning_rate')})")
    train.add_argument(
        "--lambda-inv",
        help=(
            "Noise2Same invariance weight, or 'auto' "
            f"(default {make_config('noise2same').lambda_inv})"
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
        choices=DEVICES,
        help="where to train (default auto: CUDA, then Apple MPS, then CPU)",
    )
    train.add_argument("--validation", help="image to compute the validation loss on")
    train.add_argument("--checkpoint-dir", help="folder for resumable checkpoints")
    train.add_argument("--checkpoint-every", type=int, help="write a checkpoint every N steps")
    train.add_argument("--resume", help="checkpoint to continue training from")
    train.add_argument("--quiet", action="store_true", help="print only the summary")

    predict = commands.add_parser(
        "predict",
        help="denoise an image with a trained model",
        description="Denoise an image of any size with tiled prediction.",
    )
    predict.add_argument("model", metavar="MODEL", help="model file from 'selfdenoise train'")
    predict.add_argument("input", metavar="INPUT", help="image to denoise (.tif, .npy, .zarr)")
    predict.add_argument("--out", required=True, help="output image (.tif, .npy, .zarr)")
    predict.add_argument("--axes", help="axes of INPUT (default: from the file or the model)")
    predict.add_argument("--tile", type=_int_tuple, help="tile shape, e.g. 256,256 (default: auto)")
    predict.add_argument(
        "--overlap", type=_int_tuple, help="halo per side, e.g. 16,16 (default: receptive field)"
    )
    predict.add_argument("--batch", type=int, help="tiles per forward pass")
    predict.add_argument("--tta", action="store_true", help="average 8 flips/rotations (8x slower)")
    predict.add_argument(
        "--dtype", default="float32", help="output dtype: float32 (default) or 'input'"
    )
    predict.add_argument(
        "--device", choices=DEVICES, help="where to predict (default: the model's device, or auto)"
    )

    compare = commands.add_parser(
        "compare",
        help="PSNR, SSIM, edge and noise readouts of denoised images",
        description="Compare denoised images with a clean reference and/or the noisy input.",
    )
    compare.add_argument("candidates", nargs="+", metavar="CANDIDATE", help="denoised images")
    compare.add_argument("--reference", help="clean image (enables PSNR and SSIM)")
    compare.add_argument("--noisy", help="noisy input (enables method-noise readouts)")
    compare.add_argument("--data-range", type=float, help="intensity range for PSNR/SSIM")
    compare.add_argument("--json", action="store_true", help="print the table as JSON")
    compare.add_argument("--csv", help="also write the table to this CSV file")

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
    demo.add_argument("--seed", type=int, default=0, help="seed of the sample and the training")
    demo.add_argument(
        "--device", default="auto", choices=DEVICES, help="where to train (default auto)"
    )
    return parser


def _read(path: str, memmap: bool = False):
    from .io import read_image

    return read_image(path, memmap=memmap)


def _train_settings(args: argparse.Namespace) -> dict:
    settings: dict = {"seed": args.seed, "device": args.device}
    optional = {
        "epochs": args.epochs,
        "max_minutes": args.minutes,
        "steps": args.steps,
        "steps_per_epoch": args.steps_per_epoch,
        "patch_shape": args.patch,
        "batch_size": args.batch,
        "learning_rate": args.lr,
        "fraction": args.fraction,
        "checkpoint_dir": args.checkpoint_dir,
        "checkpoint_every": args.checkpoint_every,
    }
    settings.update({k: v for k, v in optional.items() if v is not None})
    if args.minutes is not None:
        settings["epochs"] = 10**6
    if args.lambda_inv is not None:
        settings["lambda_inv"] = (
            args.lambda_inv if args.lambda_inv == "auto" else float(args.lambda_inv)
        )
    return settings


def _cmd_train(args: argparse.Namespace) -> int:
    from .api import Denoiser

    images = [_read(path) for path in args.inputs]
    axes = args.axes or images[0].axes
    if axes is None:
        raise SelfDenoiseError(
            f"the axes of '{args.inputs[0]}' are unknown; pass --axes (e.g. --axes ZYX)."
        )
    validation = _read(args.validation).data if args.validation else None
    model = Denoiser(args.method, axes, **_train_settings(args))
    _print(
        f"training {args.method} on {len(images)} image(s), axes {axes}, device {model.device_description}"
    )
    last_print = 0.0

    def report(progress) -> None:
        nonlocal last_print
        if args.quiet or not (progress.validated or time.perf_counter() - last_print > 10):
            return
        last_print = time.perf_counter()
        val = f"{progress.val_loss:.5f}" if progress.val_loss is not None else "-"
        eta = f"{progress.eta_seconds:.0f}s" if progress.eta_seconds is not None else "?"
        _print(
            f"step {progress.step}/{progress.total_steps} epoch {progress.epoch} "
            f"loss {progress.loss:.5f} val {val} lr {progress.learning_rate:.2e} "
            f"{progress.steps_per_second:.1f} steps/s eta {eta}"
        )

    try:
        history = model.fit(
            [image.data for image in images], validation, callback=report, resume=args.resume
        )
        if _is_main_process():
            path = model.save(args.out)
            best = min((h["val_loss"] for h in history), default=float("nan"))
            _print(
                f"saved {path} ({history[-1]['step'] if history else 0} steps, best validation loss {best:.5f})"
            )
    finally:
        from .train import distributed_teardown

        distributed_teardown()
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from .api import Denoiser
    from .io import open_zarr_output, write_image

    model = Denoiser.load(args.model, device=args.device)
    image = _read(args.input, memmap=True)
    axes = args.axes or (image.axes if image.axes and len(image.axes) == image.data.ndim else None)
    streamed = Path(args.out).suffix.lower() == ".zarr" and args.dtype == "float32"
    out = open_zarr_output(args.out, image.data.shape, np.float32) if streamed else None
    started = time.perf_counter()
    result = model.predict(
        image.data,
        axes,
        tile_shape=args.tile,
        overlap=_overlap(args.overlap),
        batch_size=args.batch,
        tta=args.tta,
        out=out,
        dtype=None if args.dtype == "float32" else args.dtype,
    )
    if not streamed:
        write_image(args.out, result, axes=axes or model.config.axes, scale=image.scale)
    _print(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


def _overlap(values):
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def _cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from .metrics import compare

    candidates = {name: np.asarray(_read(p).data) for name, p in _unique_names(args.candidates)}
    reference = np.asarray(_read(args.reference).data) if args.reference else None
    noisy = np.asarray(_read(args.noisy).data) if args.noisy else None
    table = compare(candidates, reference=reference, noisy=noisy, data_range=args.data_range)
    print(table.to_json() if args.json else str(table))
    if args.csv:
        table.to_csv(args.csv)
    return 0


def _unique_names(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Short display names for files: the stem, or the file name where stems repeat."""
    stems = [Path(p).stem for p in paths]
    names = [s if stems.count(s) == 1 else Path(p).name for s, p in zip(stems, paths, strict=True)]
    names = [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]
    return list(zip(names, paths, strict=True))


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(
        Path(args.out),
        minutes=args.minutes,
        methods=args.methods,
        seed=args.seed,
        device=args.device,
    )
    return 0


COMMANDS = {
    "train": _cmd_train,
    "predict": _cmd_predict,
    "compare": _cmd_compare,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``selfdenoise`` command."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SelfDenoiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
