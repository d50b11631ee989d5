"""Host side of tiled prediction: how fast the pipeline around the network runs (not a test).

:func:`selfdenoise.tiling.predict_tiled` reads each tile, checks it for NaN, normalises it,
copies it to the device, and afterwards restores the intensities of the prediction and stores
its core. On a GPU the network is so fast that this host work sets the pace (issue #14: an
8192x8192 image predicted at 60 Mvox/s on an H200 whose network alone runs at 449 Mvox/s).
This benchmark replaces the network with one that costs nothing (the identity), so the rate it
prints is the most any accelerator can get from ``predict_tiled`` on this machine's CPU, per
number of host threads (:data:`selfdenoise.tiling._parallel.HOST_THREADS`).

Protocol: numpy float32 input and output, a mean/std normaliser, the default crop stitching,
one tile covering the image (the plan a large GPU picks) unless ``--tile`` is given; each
case runs ``--repeats`` times and the best time counts. Usage::

    python benchmarks/host_pipeline.py                    # 8192x8192 and 128x1024x1024
    python benchmarks/host_pipeline.py --threads 1,2,8 --write-docs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, markdown_table, write_section  # noqa: E402

RESULTS = HERE / "results" / "host-pipeline.json"


def rate(shape: tuple[int, ...], threads: int, repeats: int, tile) -> float:
    """Best image Mvox/s of ``predict_tiled`` with an identity network."""
    import torch

    from selfdenoise.axes import Layout
    from selfdenoise.data import Normaliser
    from selfdenoise.tiling import predict_tiled

    try:
        from selfdenoise.tiling import _parallel
    except ImportError:  # code from before the host threads (one thread)
        _parallel = None
    if _parallel is not None:
        _parallel.HOST_THREADS = threads
    network = torch.nn.Conv2d(1, 1, 1) if len(shape) == 2 else torch.nn.Conv3d(1, 1, 1)
    network.forward = lambda x: x  # costs nothing: only the pipeline is timed
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    layout = Layout("YX" if len(shape) == 2 else "ZYX", shape)
    normaliser = Normaliser("meanstd", [0.5], [0.29])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict_tiled(
            network,
            image,
            layout,
            normaliser,
            size_multiple=16,
            receptive_radius=29,
            tile_shape=tile or shape,
            device="cpu",
        )
        best = min(best, time.perf_counter() - started)
    return image.size / best / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="8192x8192,128x1024x1024")
    parser.add_argument("--threads", default="1,2", help="host threads to compare")
    parser.add_argument("--tile", help="tile shape, e.g. 2048x2048 (default: the image)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--label", default="this checkout", help="name of the code measured")
    parser.add_argument("--note", help="a sentence on the run, kept in the docs section")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    tile = tuple(int(v) for v in args.tile.split("x")) if args.tile else None
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    results["machine"] = machine_line()
    if args.note:
        results["note"] = args.note
    for text in args.shapes.split(","):
        shape = tuple(int(v) for v in text.split("x"))
        for threads in (int(t) for t in args.threads.split(",")):
            mvox = rate(shape, threads, args.repeats, tile)
            print(f"{args.label}: {text}, {threads} host thread(s): {mvox:.1f} Mvox/s", flush=True)
            row = {"code": args.label, "image": text, "threads": threads, "mvox_per_s": mvox}
            results["rows"].append(row)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if args.write_docs:
        body = [[r["code"], r["image"], r["threads"], r["mvox_per_s"]] for r in results["rows"]]
        table = markdown_table(["code", "image", "host threads", "Mvox/s"], body)
        note = f"\n\n{results['note']}" if results.get("note") else ""
        text = f"{SECTION_HEAD}\n\n{results['machine']}.\n\n{table}{note}"
        write_section("host-pipeline", text)
    return 0


SECTION_HEAD = """## Host side of tiled prediction — `benchmarks/host_pipeline.py`

`predict_tiled` with a network that costs nothing (the identity): the rate at which the
read / NaN check / normalise / restore / store pipeline runs, i.e. the most any GPU can get
from tiled prediction on this CPU. One tile covers the image (what a large GPU plans), numpy
float32 in and out, best of 3."""

if __name__ == "__main__":
    sys.exit(main())
