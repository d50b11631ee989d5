"""``selfdenoise predict``, ``compare`` and ``demo``."""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import SelfDenoiseError
from .common import given, read
from .progress import Output


def cmd_predict(args: argparse.Namespace) -> int:
    from ..api import Denoiser

    jobs = _prediction_jobs(args)
    output = Output.for_args(args)
    model = Denoiser.load(args.model, device=args.device)
    with dask_client(getattr(args, "dask_scheduler", None)):
        if len(jobs) == 1 and args.out_dir is None:
            _predict_file(model, *jobs[0], args, output)
            return 0
        failed = []
        for source, target in jobs:
            try:
                _predict_file(model, source, target, args, output)
            except (SelfDenoiseError, OSError, MemoryError, FloatingPointError) as exc:
                output.close()
                failed.append(source)
                message = " ".join(str(exc).split()) or type(exc).__name__
                print(f"error: {source}: {message}", file=sys.stderr, flush=True)
    done = len(jobs) - len(failed)
    output.event(
        "summary",
        f"denoised {done} of {len(jobs)} files into {args.out_dir}"
        + (f"; {len(failed)} failed" if failed else ""),
        summary=True,
        done=done,
        failed=[str(p) for p in failed],
    )
    return 1 if failed else 0


def _expand(patterns: Sequence[str]) -> list[str]:
    """Input paths, with glob patterns (quoted for the shell) expanded in sorted order."""
    paths: list[str] = []
    for pattern in patterns:
        if any(char in pattern for char in "*?["):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise SelfDenoiseError(f"no files match '{pattern}'; check the pattern.")
            paths.extend(matches)
        else:
            paths.append(pattern)
    return paths


def _prediction_jobs(args: argparse.Namespace) -> list[tuple[str, Path]]:
    """(input, output) pairs, every output checked before the model is loaded."""
    from ..io import check_output_folder, check_output_path, output_format

    inputs = _expand(args.inputs)
    if args.out is not None:
        if len(inputs) != 1:
            raise SelfDenoiseError(
                f"--out takes one input but {len(inputs)} were given; use --out-dir DIR."
            )
        jobs = [(inputs[0], Path(args.out))]
    else:
        check_output_folder(args.out_dir, [args.model, *inputs], option="--out-dir")
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        jobs = [(source, Path(args.out_dir) / _output_name(source)) for source in inputs]
        names = [target for _, target in jobs]
        twice = next((t for t in names if names.count(t) > 1), None)
        if twice is not None:
            raise SelfDenoiseError(
                f"two inputs would both be written to '{twice}'; give inputs with distinct names."
            )
    for _, target in jobs:
        folder = output_format(target).folder
        check_output_path(target, [args.model, *inputs], folder_ok=folder, option="--out")
    return jobs


def _output_name(source: str) -> str:
    """The input's name where we write its format, else the same stem as a TIFF."""
    from ..io import output_format

    name = Path(source.rstrip("/")).name
    try:
        output_format(name)
    except SelfDenoiseError:
        return f"{Path(name).stem}.tif"
    return name


def _predict_file(model, source: str, target: Path, args: argparse.Namespace, output) -> None:
    from ..io import output_format, write_image

    image = read(source, memmap=True, series=args.series)
    ndim = image.data.ndim
    axes = args.axes or (image.axes if image.axes and len(image.axes) == ndim else None)
    out_axes = axes or (model.config.axes if len(model.config.axes) == ndim else None)
    scale = image.scale if out_axes and image.scale and len(image.scale) == ndim else None
    started = time.perf_counter()
    progress = output.tiles(Path(source).name)
    label = (out_axes, scale, image.unit)
    try:
        if output_format(target).folder:  # stream into a new store, tile by tile
            _predict_to_store(model, image.data, axes, args, target, label, progress)
        elif getattr(args, "dask_scheduler", None):
            result = _predict_on_cluster(model, image.data, axes, args).compute()
            write_image(target, result, axes=out_axes, scale=scale, unit=image.unit)
        else:
            result = _predict(model, image.data, axes, args, None, progress)
            write_image(target, result, axes=out_axes, scale=scale, unit=image.unit)
    finally:
        output.close()
    seconds = time.perf_counter() - started
    output.event(
        "wrote",
        f"wrote {target} in {seconds:.1f}s",
        path=str(target),
        input=source,
        seconds=seconds,
    )


def _predict_to_store(model, data, axes, args, target: Path, label: tuple, progress) -> None:
    """Predict into a zarr store without holding the image: a plain ``.zarr`` is filled in a
    staged sibling; an ``.ome.zarr`` gets a staged level 0, then its pyramid from that."""
    from ..io import output_format, staged_zarr_output

    out_axes, scale, unit = label
    dtype = output_dtype(args.dtype, data.dtype)
    shape = tuple(data.shape)
    if output_format(target).name != "OME-Zarr":
        with staged_zarr_output(target, shape, dtype) as out:
            _fill(model, data, axes, args, out, progress)
            _label_zarr(out, out_axes, scale, unit)
        return
    from .._large_data import write_pyramid

    chunks = staging_chunks(shape, out_axes, model.config.ndim)
    with scratch_store(target, shape, dtype, chunks) as level0:
        _fill(model, data, axes, args, level0, progress)
        write_pyramid(target, level0, out_axes, scale, unit)


@contextmanager
def scratch_store(target: Path, shape: tuple, dtype, chunks) -> Iterator[Any]:
    """A temporary zarr array next to ``target``, removed when the block ends."""
    import shutil
    import tempfile

    from ..io import open_zarr_output

    try:
        folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{target}': {exc}.") from exc
    try:
        yield open_zarr_output(folder / "level0.zarr", shape, dtype, chunks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def staging_chunks(shape: tuple, axes: str | None, spatial_ndim: int) -> tuple[int, ...] | None:
    """Chunks of a level-0 store that tiled prediction fills without rewriting chunks: one
    plane deep along the axes a 2D model steps through; None for the default chunks."""
    if axes is None or len(axes) != len(shape) or spatial_ndim != 2:
        return None
    return tuple(
        min(size, 256) if a in "YX" else size if a == "C" else 1
        for a, size in zip(axes, shape, strict=True)
    )


def output_dtype(choice: str, input_dtype):
    """The output dtype for ``--dtype`` (``'float32'``, ``'input'`` or a NumPy name)."""
    import numpy as np

    if choice == "float32":
        return np.dtype(np.float32)
    return np.dtype(input_dtype) if choice == "input" else np.dtype(choice)


def _fill(model, data, axes, args, out, progress) -> None:
    """Fill ``out`` with the prediction: tile by tile here, or chunk by chunk on a cluster."""
    if getattr(args, "dask_scheduler", None):
        import dask.array as da

        da.store(_predict_on_cluster(model, data, axes, args, out.dtype), out, lock=False)
    else:
        from .._large_data import bounded_tiling

        given = {"tile_shape": args.tile, "batch_size": args.batch}
        _predict(model, data, axes, args, out, progress, bounded_tiling(model, data, axes, given))


def _predict_on_cluster(model, data, axes, args, dtype=None):
    """The lazy prediction of ``data`` (``predict_dask``), run by the connected client."""
    import dask.array as da
    import numpy as np

    lazy = data if isinstance(data, da.Array) else da.from_array(data, chunks="auto")
    return model.predict_dask(
        lazy,
        axes,
        tile_shape=args.tile,
        overlap=_overlap(args.overlap),
        batch_size=args.batch,
        tta=args.tta,
        restore_detail=args.restore_detail,
        collaborative_filter=args.collaborative_filter,
        out_dtype=dtype or output_dtype(args.dtype, np.dtype(data.dtype)),
    )


@contextmanager
def dask_client(address: str | None, timeout: float = 5.0) -> Iterator[None]:
    """Connect to a dask scheduler for the block (nothing without an address).

    Raises
    ------
    SelfDenoiseError
        If ``distributed`` is not installed or the scheduler cannot be reached.
    """
    if not address:
        yield
        return
    try:
        import distributed
    except ImportError:
        raise SelfDenoiseError(
            "--dask-scheduler needs dask.distributed; install it with: "
            "pip install 'napari-selfdenoise[dask]'."
        ) from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=True)
    except (OSError, TimeoutError, ValueError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise SelfDenoiseError(
            f"cannot reach the dask scheduler at {address!r} within {timeout:g}s ({detail}); "
            "check the address (e.g. tcp://host:8786) and that the scheduler runs."
        ) from None
    with client:
        yield


def _predict(model, data, axes: str | None, args: argparse.Namespace, out, progress, tiling=None):
    tiling = tiling or {"tile_shape": args.tile, "batch_size": args.batch}
    return model.predict(
        data,
        axes,
        tile_shape=tiling["tile_shape"],
        overlap=_overlap(args.overlap),
        batch_size=tiling["batch_size"],
        tta=args.tta,
        restore_detail=args.restore_detail,
        collaborative_filter=args.collaborative_filter,
        out=out,
        dtype=None if out is not None or args.dtype == "float32" else args.dtype,
        progress=progress,
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
    print(table.to_json() if args.json else _compare_text(table, args.explain))
    if args.csv:
        text = table.to_csv()
        replace_atomically(Path(args.csv), lambda path: path.write_text(text, encoding="utf-8"))
    return 0


def _compare_text(table, explain: bool) -> str:
    """The text table, with the legend under it (``--explain``) or a hint where it is."""
    if explain:
        return f"{table.to_text()}\n\n{table.legend()}"
    return f"{table.to_text()}\n(add --explain for what each row means and which way is better)"


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
        steps=args.steps,
        all_metrics=args.all_metrics,
    )
    return 0
