"""``selfdenoise train``: check the outputs first, train, save (also after Ctrl-C)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._errors import SelfDenoiseError
from ..registry import get_method, method_names
from .common import given, is_main_process, masking_methods, read
from .progress import Output

STRUCT_AXES = {"x": -1, "y": -2, "z": -3}
"""``--struct-axis`` letters and the masking ``struct_axis`` they stand for."""


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
        "lambda_inv": args.lambda_inv,
        "regulariser_weight": args.regulariser_weight,
        "neighbour_pairs": args.neighbour_pairs,
        "struct_axis": STRUCT_AXES.get(args.struct_axis),
        "struct_span": args.struct_span,
        "amp": args.amp,
    }
    settings.update({k: v for k, v in optional.items() if v is not None})
    return settings  # under --minutes the time budget alone ends training


def _check_train_args(args: argparse.Namespace) -> Path:
    """Refuse inconsistent options and unwritable outputs before any data is read.

    Returns the model file that will be written.
    """
    from ..io import bundle_path, check_output_folder, check_output_path

    if (args.checkpoint_every is None) != (args.checkpoint_dir is None):
        option, missing = (
            ("--checkpoint-every", "--checkpoint-dir DIR")
            if args.checkpoint_dir is None
            else ("--checkpoint-dir", "--checkpoint-every N")
        )
        raise SelfDenoiseError(f"{option} writes checkpoints only together with {missing}.")
    if args.struct_axis is not None and not get_method(args.method).uses_masking:
        raise SelfDenoiseError(
            f"--struct-axis needs a masking method ({', '.join(masking_methods())}); "
            f"{args.method} masks no pixels. Pass e.g. --method n2v2."
        )
    if args.struct_axis == "z" and args.axes and "Z" not in args.axes.upper():
        raise SelfDenoiseError("--struct-axis z needs a Z axis (3D data, e.g. --axes ZYX).")
    _check_method_options(args)
    inputs = [*args.inputs, *([args.validation] if args.validation else [])]
    model = check_output_path(bundle_path(args.out), [*inputs, *given(args.resume)], option="--out")
    if args.checkpoint_dir is not None:
        folder = check_output_folder(args.checkpoint_dir, inputs, option="--checkpoint-dir")
        if folder.is_dir():  # the engine creates it; a new folder holds no input
            # Overwriting the checkpoint being resumed from is the point of resuming.
            check_output_path(folder / "checkpoint.pt", [*inputs, model], option="the checkpoint")
    return model


def _check_method_options(args: argparse.Namespace) -> None:
    """Refuse a method's own option (``--lambda-inv``, ``--regulariser-weight``,
    ``--neighbour-pairs``) given for a method that does not have it, instead of ignoring it."""
    for setting in ("lambda_inv", "regulariser_weight", "neighbour_pairs"):
        if getattr(args, setting) is None or setting in get_method(args.method).objective_options:
            continue
        owners = [name for name in method_names() if setting in get_method(name).objective_options]
        option = "--" + setting.replace("_", "-")
        raise SelfDenoiseError(
            f"{option} is a setting of {', '.join(owners)}, not of {args.method}; "
            f"pass --method {owners[0]} or leave {option} out."
        )


def cmd_train(args: argparse.Namespace) -> int:
    from ..api import Denoiser

    out = _check_train_args(args)
    images = [read(path, series=args.series) for path in args.inputs]
    axes = args.axes or images[0].axes
    if axes is None:
        raise SelfDenoiseError(
            f"the axes of '{args.inputs[0]}' are unknown; pass --axes (e.g. --axes ZYX)."
        )
    if args.struct_axis == "z" and "Z" not in axes.upper():
        raise SelfDenoiseError("--struct-axis z needs a Z axis (3D data, e.g. --axes ZYX).")
    validation = read(args.validation, series=args.series).data if args.validation else None
    model = Denoiser(args.method, axes, **_train_settings(args))
    output = Output.for_args(args)
    device, precision = model.device_description, model.training_precision
    output.event(
        "start",
        f"training {args.method} on {len(images)} image(s), axes {axes}, "
        f"device {device}, {precision}",
        method=args.method,
        images=len(images),
        axes=axes,
        device=device,
        precision=precision,
    )
    last_step = 0

    def report(progress) -> None:
        nonlocal last_step
        last_step = progress.step
        output.training(progress)

    try:
        history = model.fit(
            [image.data for image in images], validation, callback=report, resume=args.resume
        )
    except KeyboardInterrupt:
        return _save_interrupted(model, out, last_step)
    finally:
        output.close()
    # The engine tears the distributed process group down at the end of fit.
    if is_main_process():
        path = model.save(out)
        best = min((h["val_loss"] for h in history), default=float("nan"))
        steps = model.steps_trained
        weight = model.regulariser_weight  # resolved from the data when 'auto'
        pairs = model.neighbour_pairs
        extra = {} if weight is None else {"regulariser_weight": weight, "neighbour_pairs": pairs}
        said = "" if weight is None else f", regulariser weight {weight:g}, {pairs} pixel pairs"
        output.event(
            "saved",
            f"saved {path} ({steps} steps, best validation loss {best:.5f}{said})",
            summary=True,
            path=str(path),
            steps=steps,
            best_val_loss=best,
            **extra,
        )
    return 0


@contextmanager
def _no_interrupts() -> Iterator[None]:
    """Hold Ctrl-C off while the last weights are written (main thread only)."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _save_interrupted(model, out: Path, last_step: int) -> int:
    """After Ctrl-C in training: save the best weights so far (rank 0) and say where."""
    steps = int(getattr(model, "steps_trained", last_step))
    if not is_main_process():
        return 130
    if steps <= 0 or not model.is_trained:
        print("error: interrupted before the first training step; nothing saved.", file=sys.stderr)
        return 130
    with _no_interrupts():
        path = model.save(out)
    print(
        f"error: interrupted after {steps} steps; saved the best weights so far to {path}",
        file=sys.stderr,
        flush=True,
    )
    return 130
