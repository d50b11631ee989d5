"""``selfdenoise predict``, ``compare`` and ``demo``."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from .common import given, read, say


def cmd_predict(args: argparse.Namespace) -> int:
    from ..api import Denoiser
    from ..io import check_output_path, output_format, staged_zarr_output, write_image

    entry = output_format(args.out)
    check_output_path(args.out, [args.model, args.input], folder_ok=entry.folder, option="--out")
    model = Denoiser.load(args.model, device=args.device)
    image = read(args.input, memmap=True, series=args.series)
    ndim = image.data.ndim
    axes = args.axes or (image.axes if image.axes and len(image.axes) == ndim else None)
    out_axes = axes or (model.config.axes if len(model.config.axes) == ndim else None)
    scale = image.scale if out_axes and image.scale and len(image.scale) == ndim else None
    started = time.perf_counter()
    if entry.folder and args.dtype == "float32":  # stream tiles into a new store
        import numpy as np

        with staged_zarr_output(args.out, image.data.shape, np.float32) as out:
            _predict(model, image.data, axes, args, out)
            _label_zarr(out, out_axes, scale, image.unit)
    else:
        result = _predict(model, image.data, axes, args, None)
        write_image(args.out, result, axes=out_axes, scale=scale, unit=image.unit)
    say(f"wrote {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


def _predict(model, data, axes: str | None, args: argparse.Namespace, out):
    return model.predict(
        data,
        axes,
        tile_shape=args.tile,
        overlap=_overlap(args.overlap),
        batch_size=args.batch,
        tta=args.tta,
        out=out,
        dtype=None if args.dtype == "float32" else args.dtype,
    )


def _label_zarr(array, axes: str | None, scale, unit: str | None) -> None:
    if axes:
        array.attrs["axes"] = axes
        if scale:
            array.attrs["scale"] = list(scale)
            if unit:
                array.attrs["unit"] = unit


def _overlap(values):
    if values is None:
        return None
    return values[0] if len(values) == 1 else values


def cmd_compare(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import check_output_path, replace_atomically
    from ..metrics import compare

    if args.csv:
        inputs = [*args.candidates, *given(args.reference, args.noisy)]
        check_output_path(args.csv, inputs, option="--csv")
    candidates = {name: np.asarray(read(p).data) for name, p in _unique_names(args.candidates)}
    reference = np.asarray(read(args.reference).data) if args.reference else None
    noisy = np.asarray(read(args.noisy).data) if args.noisy else None
    table = compare(candidates, reference=reference, noisy=noisy, data_range=args.data_range)
    print(table.to_json() if args.json else str(table))
    if args.csv:
        text = table.to_csv()
        replace_atomically(Path(args.csv), lambda path: path.write_text(text, encoding="utf-8"))
    return 0


def _unique_names(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Short display names for files: the stem, or the file name where stems repeat."""
    stems = [Path(p).stem for p in paths]
    names = [s if stems.count(s) == 1 else Path(p).name for s, p in zip(stems, paths, strict=True)]
    names = [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]
    return list(zip(names, paths, strict=True))


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(
        Path(args.out),
        minutes=args.minutes,
        methods=args.methods,
        seed=args.seed,
        device=args.device,
    )
    return 0
