"""Peak memory of denoising an OME-Zarr bigger than the memory budget (not a test).

Issue 15's check: a ``Z x Y x X`` float32 OME-Zarr (default 64 x 2048 x 2048, 1 GiB) goes

- ``cli``: through ``selfdenoise predict MODEL in.ome.zarr --out den.ome.zarr`` (tiled
  prediction into a staged level 0, then the pyramid built lazily from it), and
- ``widget``: through the Denoise widget's code path without a GUI
  (:func:`selfdenoise._napari._disk_jobs.predict_to_store`, the job the widget runs for a
  dask-backed layer: level 0 of the OME-Zarr, as napari's reader gives it, into a zarr store).

Each case runs in its own process. Its baseline is the resident memory (RSS) once the
modules are imported and the model is loaded; a psutil thread samples RSS every 10 ms during
the run. Target: peak <= baseline + 0.5 GiB, whatever the input size. The network is small
(U-Net depth 2, 8 channels, trained for 2 steps): memory, not quality, is measured here.
Usage::

    python benchmarks/large_data.py                     # 1 GiB input; minutes on 2 cores
    python benchmarks/large_data.py --size 16 1024 1024 # 64 MiB, about a minute
    python benchmarks/large_data.py --malloc-tuned      # fewer glibc arenas (see below)
    python benchmarks/large_data.py --no-docs           # print only
    python benchmarks/large_data.py --cases part-read part-forward part-write
                                       # the store job's parts alone, on 4 planes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import (  # noqa: E402
    append_record,
    machine_line,
    markdown_table,
    read_records,
    write_section,
)

GIB = 1024**3
TARGET_GIB = 0.5
RESULTS = HERE / "results" / "large-data-results.json"
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(1024**2)}
"""glibc settings of ``--malloc-tuned`` runs: few arenas and a fixed mmap threshold, so that
memory freed by the reader, writer and forward threads goes back to the system."""


class PeakSampler:
    """Samples this process's RSS in a thread; ``peak`` is the largest value seen."""

    def __init__(self, interval: float = 0.01) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def make_model(path: Path) -> None:
    import numpy as np

    from selfdenoise.api import Denoiser

    rng = np.random.default_rng(0)
    noisy = rng.normal(0.5, 0.1, (64, 64)).astype(np.float32)
    model = Denoiser(
        "n2v2",
        "YX",
        steps=2,
        steps_per_epoch=2,
        patch_shape=(32, 32),
        batch_size=2,
        depth=2,
        base_channels=8,
    )
    model.continue_training(device="cpu")
    model.fit(noisy)
    model.save(path)


def make_input(path: Path, shape: tuple[int, int, int]) -> None:
    """A random float32 OME-Zarr written block by block (never whole in memory).

    The store gets :func:`selfdenoise.ome.write_ome_zarr`'s default chunks (up to 32 planes of
    256 x 256), so a 2D model's tile of one plane decodes whole 32-plane chunks.
    """
    import dask.array as da

    from selfdenoise import ome

    data = da.random.default_rng(0).random(shape, dtype="f4", chunks=(1, 1024, 1024))
    ome.write_ome_zarr(path, data, "ZYX", scale=(2.0, 0.1, 0.1), units="µm", levels=1)


PART_PLANES = 4
"""Planes of the input that the ``part-*`` cases go through."""

PARTS = {
    "part-read": "tile reads only",
    "part-forward": "forward passes only",
    "part-write": "slab writes only",
}
"""The store job's three parts, each measured alone (``--cases part-read ...``)."""


def run_part(case: str, denoiser, data, target: str) -> None:
    """One part of the widget's store job on the first :data:`PART_PLANES` planes of ``data``:
    every tile read, 16 forward passes of the job's tile and batch, or every slab written."""
    import numpy as np
    import torch

    from selfdenoise._large_data import bounded_tiling
    from selfdenoise._napari._disk_jobs import store_chunks
    from selfdenoise.io import open_zarr_output
    from selfdenoise.tiling._grid import TileGrid, read_tile

    data = data[:PART_PLANES]
    options = bounded_tiling(denoiser, data, "ZYX", {})
    layout = denoiser.prediction_layout(data, "ZYX")
    network = denoiser.network
    halo = (network.receptive_radius,) * 2
    grid = TileGrid.build(
        layout.spatial_shape, options["tile_shape"], halo, network.size_multiple, len(data)
    )
    if case == "part-read":
        for tile in grid:
            read_tile(data, layout, tile.sample, grid.origins(tile), grid.tile_shape)
    elif case == "part-forward":
        batch = torch.zeros((options["batch_size"], 1, *grid.tile_shape))
        with torch.inference_mode():
            for _ in range(16):
                network.eval()(batch)
    else:
        shape = tuple(data.shape)
        out = open_zarr_output(target, shape, np.float32, store_chunks(shape, "ZYX", 2))
        step = grid.axes[grid.slab_axis].tile
        for plane in range(shape[0]):
            for start in range(0, shape[1], step):
                out[plane, start : start + step] = np.ones((min(step, shape[1] - start), shape[2]))


def run_case(case: str, model: str, source: str, target: str) -> dict:
    """One case in this process (called in a subprocess by :func:`main`)."""
    import psutil

    import selfdenoise.cli as cli
    from selfdenoise._napari._disk_jobs import predict_to_store
    from selfdenoise.api import Denoiser
    from selfdenoise.io import read_image

    denoiser = Denoiser.load(model, device="cpu")
    image = read_image(source)
    baseline = psutil.Process().memory_info().rss
    started = time.perf_counter()
    with PeakSampler() as sampler:
        if case == "cli":
            code = cli.main(["predict", model, source, "--out", target, "--quiet"])
            if code != 0:
                raise SystemExit(f"the CLI failed with status {code}")
        elif case in PARTS:
            run_part(case, denoiser, image.data, target)
        else:
            outcome = predict_to_store(denoiser, image.data, "ZYX", {}, target)
            if not outcome.ok:
                raise SystemExit(f"the widget job failed: {outcome.error}")
    seconds = time.perf_counter() - started
    return {
        "case": case,
        "baseline_gib": baseline / GIB,
        "peak_gib": sampler.peak / GIB,
        "above_gib": (sampler.peak - baseline) / GIB,
        "seconds": seconds,
    }


def _path_label(record: dict) -> str:
    case = record["case"]
    label = f"parts: {PARTS[case]} ({PART_PLANES} planes)" if case in PARTS else case
    return label + (f" ({record['note_row']})" if record.get("note_row") else "")


def report(records: list[dict]) -> str:
    rows = [
        [
            r["size"],
            f"{r['input_gib']:.2f}",
            _path_label(r),
            "tuned" if r.get("malloc_tuned") else "default",
            f"{r['baseline_gib']:.2f}",
            f"{r['peak_gib']:.2f}",
            f"{r['above_gib']:.3f}",
            f"{r['seconds']:.0f}",
            "yes" if r["above_gib"] <= TARGET_GIB else "NO",
        ]
        for r in records
    ]
    table = markdown_table(
        [
            "input (ZxYxX)",
            "input (GiB)",
            "path",
            "glibc malloc",
            "baseline RSS (GiB)",
            "peak RSS (GiB)",
            "peak above baseline (GiB)",
            "time (s)",
            f"<= {TARGET_GIB} GiB",
        ],
        rows,
    )
    notes = sorted({r.get("note", "") for r in records} - {""})
    return (
        "## Large data: peak memory through the CLI and the Denoise widget\n\n"
        "Written by `benchmarks/large_data.py` (one row per run and path, from "
        "`benchmarks/results/large-data-results.json`). Input: a random float32 OME-Zarr "
        "(scale 2 x 0.1 x 0.1 µm) with `ome.write_ome_zarr`'s default chunks, up to "
        "32x256x256: each tile of one plane decodes the 32 planes of every chunk it touches; "
        "a 2D U-Net of depth 2 with 8 channels, trained for 2 steps. `cli` is `selfdenoise "
        "predict MODEL in.ome.zarr --out den.ome.zarr` (tiles into a staged level 0, then a "
        "3-level pyramid); `widget` is the Denoise widget's store job "
        "(`_napari/_disk_jobs.predict_to_store`) on level 0 as a dask array, into a zarr "
        "store. Each runs in its own process; baseline = RSS after imports and model load; "
        "peak sampled by psutil every 10 ms. Both use the bounded tiling of "
        "`selfdenoise._large_data` (about 96 MiB of activations per pass by the planner's "
        "estimate) and one output slab of at most 256 MiB. The `parts` rows run one part of "
        "the widget's job alone on the first planes of the same input (`--cases part-read "
        "part-forward part-write`), to show where the memory goes. Target: peak <= baseline "
        "+ 0.5 GiB. 'tuned' runs set "
        f"`{' '.join(f'{k}={v}' for k, v in MALLOC_ENV.items())}` (`--malloc-tuned`): with "
        "glibc's defaults, memory freed by the reader, writer and forward threads stays "
        "mapped in per-thread arenas and the peak creeps up with the run's length.\n\n"
        f"{table}\n\n"
        f"Machine: {machine_line()}. " + " ".join(notes) + "\n"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=3, default=[64, 2048, 2048], metavar="N")
    parser.add_argument("--workdir", help="folder for the input and outputs (default: temporary)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--note", default="", help="a sentence added to the docs section")
    parser.add_argument(
        "--cases", nargs="+", default=["cli", "widget"], choices=["cli", "widget", *PARTS]
    )
    parser.add_argument(
        "--malloc-tuned", action="store_true", help="run the cases with MALLOC_ENV (see above)"
    )
    parser.add_argument("--json", default=str(RESULTS), help="results file (JSON lines)")
    parser.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(*args.case)))
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="selfdenoise-large-"))
    work.mkdir(parents=True, exist_ok=True)
    model, source = work / "tiny.safetensors", work / "in.ome.zarr"
    try:
        make_model(model)
        shape = tuple(args.size)
        if not source.exists():
            make_input(source, shape)  # type: ignore[arg-type]
        input_gib = 4 * shape[0] * shape[1] * shape[2] / GIB
        results = []
        for case in args.cases:
            target = work / ("den.ome.zarr" if case == "cli" else f"den-{case}.zarr")
            command = [sys.executable, __file__, "--case", case, str(model), str(source)]
            env = {**os.environ, **(MALLOC_ENV if args.malloc_tuned else {})}
            done = subprocess.run(
                [*command, str(target)], check=True, capture_output=True, text=True, env=env
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result.update(
                size="x".join(map(str, shape)),
                input_gib=input_gib,
                malloc_tuned=args.malloc_tuned,
                note=args.note,
            )
            append_record(Path(args.json), result)
            print(
                f"{case}: baseline {result['baseline_gib']:.2f} GiB, peak "
                f"{result['peak_gib']:.2f} GiB, +{result['above_gib']:.3f} GiB above baseline "
                f"(input {input_gib:.2f} GiB), {result['seconds']:.0f} s",
                flush=True,
            )
            results.append(result)
            shutil.rmtree(target, ignore_errors=True)
            if not args.no_docs:  # after each case, so that a long run keeps what it measured
                write_section("large-data", report(read_records(Path(args.json))))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
