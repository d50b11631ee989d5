"""Inference speed and memory of tiled prediction (not a test).

Measures, on the default U-Net (:class:`selfdenoise.config.NetworkConfig`) in eval mode with
random weights (speed does not depend on the weights):

- ``whole2d`` / ``whole3d``: the naive whole-array call (pad, normalise, one forward pass) on
  the largest image that comfortably fits; this is also the bare network's throughput on one
  big tensor;
- ``tiled2d``: :func:`selfdenoise.tiling.predict_tiled` on a 2D numpy image, default plan;
- ``tiled3d``: the same on a 3D volume streamed from a zarr array on disk into a zarr array;
- ``ours2d_same`` / ``careamics2d``: selfdenoise and CAREamics' tiled prediction with the
  same tile, overlap, batch size and network size (CAREamics' default U-Net has batch norm,
  so ours gets batch norm too), when a CAREamics environment is given.

Each case runs in its own process so that its peak resident memory (``ru_maxrss``) is its
own. Throughput is image voxels (halos not counted) per second. Usage::

    python benchmarks/inference.py                   # about 8 minutes on 2 idle CPU cores
    python benchmarks/inference.py --quick           # about 20 seconds
    python benchmarks/inference.py --size3d 64 512 512 --skip careamics2d
    python benchmarks/inference.py --write-docs      # rebuild the docs section from the results
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAREAMICS_PYTHON = HERE / "_work" / "careamics-venv" / "bin" / "python"
DEFAULT_OUT = HERE / "results" / "inference-results.json"
sys.path.insert(0, str(HERE))

from _report import write_section  # noqa: E402


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        return peak_rss_mb()


def build_model(ndim: int, batch_norm: bool = False):
    import torch

    from selfdenoise.config import NetworkConfig
    from selfdenoise.nets import build_network, receptive_radius, size_multiple

    torch.manual_seed(0)
    config = NetworkConfig(batch_norm=batch_norm)
    network = build_network(config, ndim, 1).eval()
    return network, size_multiple(config), receptive_radius(config, ndim)


def random_image(shape, seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed).normal(100.0, 10.0, size=shape).astype(np.float32)


class Standardise:
    """Normaliser stand-in with the interface :func:`predict_tiled` uses."""

    def forward(self, block, sample):
        return (block - 100.0) / 10.0

    def inverse(self, block, sample):
        return block * 10.0 + 100.0


def result(name: str, voxels: int, seconds: float, rss_before: float, **extra) -> dict:
    peak = peak_rss_mb()
    return {
        "case": name,
        "megavoxels": voxels / 1e6,
        "seconds": seconds,
        "mvox_per_s": voxels / seconds / 1e6,
        "peak_rss_mb": peak,
        "rss_before_mb": rss_before,
        "peak_beyond_model_mb": peak - rss_before,
        **extra,
    }


# --- cases (each runs in a fresh process) ---------------------------------------------------


def case_whole(shape: list[int]) -> dict:
    """Naive call: pad, normalise, one forward pass, crop; then the bare network again on
    the same tensor in channels-last format (what the tiled path feeds it)."""
    import numpy as np
    import torch

    network, multiple, _ = build_model(len(shape))
    image = random_image(shape)
    with torch.inference_mode():
        network(torch.zeros((1, 1) + (multiple * 8,) * len(shape)))  # warm-up
    rss = current_rss_mb()
    start = time.perf_counter()
    padded = np.pad(image, [(0, -s % multiple) for s in shape], mode="reflect")
    tensor = torch.from_numpy((padded - 100.0) / 10.0)[None, None]
    with torch.inference_mode():
        output = network(tensor)
    output = output[0, 0].numpy()[tuple(slice(0, s) for s in shape)] * 10.0 + 100.0
    seconds = time.perf_counter() - start
    channels_last = torch.channels_last if len(shape) == 2 else torch.channels_last_3d
    network.to(memory_format=channels_last)
    tensor = tensor.contiguous(memory_format=channels_last)
    with torch.inference_mode():
        bare_start = time.perf_counter()
        network(tensor)
        bare = time.perf_counter() - bare_start
    return result(
        f"whole{len(shape)}d",
        image.size,
        seconds,
        rss,
        shape=shape,
        bare_channels_last_mvox_per_s=image.size / bare / 1e6,
    )


def warm_up(network, plan, shape: list[int]) -> float:
    """One forward pass of the largest batch of tiles; returns the peak RSS then (MiB).

    Memory beyond this is what tiling adds: buffers, reads and writes.
    """
    import torch

    from selfdenoise.tiling._forward import convert_memory_format, fast_memory_format
    from selfdenoise.tiling._grid import TileGrid

    grid = TileGrid.build(shape, plan.tile_shape, plan.overlap, 1, 1)
    memory_format = fast_memory_format(torch.device("cpu"), len(shape))
    convert_memory_format(network, memory_format)
    batch = torch.zeros((min(plan.batch_size, len(grid)), 1, *grid.tile_shape))
    with torch.inference_mode():
        network(batch.contiguous(memory_format=memory_format))
    return peak_rss_mb()


def case_tiled2d(shape: list[int], tile=None, overlap=None, batch=None, batch_norm=False) -> dict:
    from selfdenoise.axes import Layout
    from selfdenoise.tiling import choose_tiling, predict_tiled

    network, multiple, radius = build_model(2, batch_norm)
    image = random_image(shape)
    plan = choose_tiling(
        shape,
        n_channels=1,
        receptive_radius=radius if overlap is None else overlap,
        size_multiple=multiple,
        tile_shape=tile,
        batch_size=batch,
    )
    rss = warm_up(network, plan, shape)
    start = time.perf_counter()
    predict_tiled(
        network,
        image,
        Layout("YX", image.shape),
        Standardise(),
        size_multiple=multiple,
        receptive_radius=radius,
        tile_shape=plan.tile_shape,
        overlap=plan.overlap,
        batch_size=plan.batch_size,
    )
    name = "ours2d_same" if tile is not None else "tiled2d"
    return result(
        name, image.size, time.perf_counter() - start, rss, shape=shape, plan=plan.description
    )


def case_tiled3d(shape: list[int], folder: str) -> dict:
    import zarr

    from selfdenoise.axes import Layout
    from selfdenoise.tiling import choose_tiling, predict_tiled

    network, multiple, radius = build_model(3)
    source = zarr.open_array(Path(folder) / "volume.zarr", mode="r")
    out = zarr.open_array(
        Path(folder) / "denoised.zarr",
        mode="w",
        shape=source.shape,
        chunks=source.chunks,
        dtype="float32",
    )
    plan = choose_tiling(shape, n_channels=1, receptive_radius=radius, size_multiple=multiple)
    rss = warm_up(network, plan, shape)
    start = time.perf_counter()
    predict_tiled(
        network,
        source,
        Layout("ZYX", source.shape),
        Standardise(),
        size_multiple=multiple,
        receptive_radius=radius,
        tile_shape=plan.tile_shape,
        batch_size=plan.batch_size,
        out=out,
    )
    seconds = time.perf_counter() - start
    return result("tiled3d", source.size, seconds, rss, shape=shape, plan=plan.description)


def write_volume(shape: list[int], folder: str) -> None:
    """The 3D input as a compressed zarr array, written slab by slab (not timed)."""
    import numpy as np
    import zarr

    chunks = (min(shape[0], 32), min(shape[1], 256), min(shape[2], 256))
    volume = zarr.open_array(
        Path(folder) / "volume.zarr", mode="w", shape=shape, chunks=chunks, dtype="float32"
    )
    rng = np.random.default_rng(0)
    for z in range(0, shape[0], chunks[0]):
        depth = min(chunks[0], shape[0] - z)
        volume[z : z + depth] = rng.normal(100.0, 10.0, (depth, *shape[1:])).astype(np.float32)


def case_careamics2d(shape: list[int], tile: int, overlap: int, batch: int) -> dict:
    """CAREamics' tiled prediction (run with the CAREamics environment's python)."""
    _stub_torchvision()
    import numpy as np
    from careamics import CAREamist
    from careamics.config import create_n2v_config

    config = create_n2v_config(
        experiment_name="bench",
        data_type="array",
        axes="YX",
        patch_size=[64, 64],
        batch_size=8,
    )
    norm = config.data_config.normalization
    config.data_config.normalization = type(norm)(input_means=[100.0], input_stds=[10.0])
    with tempfile.TemporaryDirectory() as work_dir:
        careamist = CAREamist(config, work_dir=work_dir, enable_progress_bar=False)
        image = np.random.default_rng(0).normal(100.0, 10.0, size=shape).astype(np.float32)
        rss = current_rss_mb()
        start = time.perf_counter()
        careamist.predict(
            image,
            tile_size=(tile, tile),
            tile_overlap=(overlap, overlap),
            axes="YX",
            batch_size=batch,
        )
        seconds = time.perf_counter() - start
    import careamics

    plan = f"tiles of {tile}x{tile}, {overlap} overlap between tiles, {batch} per batch"
    version = careamics.__version__
    return result("careamics2d", image.size, seconds, rss, shape=shape, plan=plan, version=version)


def _stub_torchvision() -> None:
    """CAREamics imports torchvision for models we do not use; no CPU build of the version
    it pins installs beside torch 2.13 here, so an empty stand-in is registered (after
    lightning and torchmetrics decided that torchvision is absent)."""
    import importlib.machinery
    import types

    try:
        import torchvision  # noqa: F401

        return
    except Exception:
        pass
    import lightning  # noqa: F401
    import torchmetrics  # noqa: F401

    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        module.__path__ = []
        sys.modules[name] = module
    sys.modules["torchvision"].__version__ = "0+stub"
    sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    sys.modules["torchvision.transforms"].functional = sys.modules[
        "torchvision.transforms.functional"
    ]


CASES = {
    "whole": case_whole,
    "tiled2d": case_tiled2d,
    "tiled3d": case_tiled3d,
    "careamics2d": case_careamics2d,
}


# --- driver ---------------------------------------------------------------------------------


def run_case(python: str, name: str, **kwargs) -> dict | None:
    command = [python, str(Path(__file__).resolve()), "--case", name, json.dumps(kwargs)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        print(f"  {name} failed: {' | '.join(tail)}", flush=True)
        return None
    record = json.loads(lines[-1])
    print(
        f"  {record['case']:<12} {record['megavoxels']:8.1f} Mvox {record['seconds']:8.1f} s "
        f"{record['mvox_per_s']:6.2f} Mvox/s  peak RSS {record['peak_rss_mb']:7.0f} MiB "
        f"(+{record['peak_beyond_model_mb']:.0f} beyond model) {record.get('plan', '')}"
        + (
            f"bare network, channels-last: {record['bare_channels_last_mvox_per_s']:.2f} Mvox/s"
            if "bare_channels_last_mvox_per_s" in record
            else ""
        ),
        flush=True,
    )
    return record


def describe_machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg()[0],
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--size2d", type=int, default=4096, help="side of the 2D image")
    parser.add_argument("--size3d", type=int, nargs=3, default=[128, 1024, 1024], help="3D volume")
    parser.add_argument("--whole2d", type=int, default=2048, help="side for the whole-array call")
    parser.add_argument("--whole3d", type=int, nargs=3, default=[64, 256, 256])
    parser.add_argument("--compare-tile", type=int, default=512, help="tile for the comparison")
    parser.add_argument("--compare-batch", type=int, default=4)
    parser.add_argument("--careamics-python", default=str(CAREAMICS_PYTHON))
    parser.add_argument("--skip", nargs="*", default=[], help="cases to skip, e.g. careamics2d")
    parser.add_argument("--json", default=str(DEFAULT_OUT), help="results file (JSON)")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rebuild the 'inference' section of docs/benchmarks.md from the results file",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("case_args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size2d, args.size3d, args.whole2d = 1024, [32, 256, 256], 512
        args.whole3d, args.compare_tile = [32, 128, 128], 256
    return args


def case_plan(args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    """(case, function, arguments) in the order they run."""
    # CAREamics counts the overlap between neighbouring tiles (half cropped on each side),
    # selfdenoise per side: 48 there is 24 here, the same geometry.
    same = dict(tile=args.compare_tile, overlap=48, batch=args.compare_batch)
    return [
        ("whole2d", "whole", dict(shape=[args.whole2d] * 2)),
        ("whole3d", "whole", dict(shape=list(args.whole3d))),
        ("tiled2d", "tiled2d", dict(shape=[args.size2d] * 2)),
        ("tiled3d", "tiled3d", dict(shape=list(args.size3d))),
        ("ours2d_same", "tiled2d", dict(
            shape=[args.size2d] * 2, tile=[same["tile"]] * 2, overlap=same["overlap"] // 2,
            batch=same["batch"], batch_norm=True,
        )),
        ("careamics2d", "careamics2d", dict(shape=[args.size2d] * 2, **same)),
    ]  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.write_docs:
        saved = json.loads(Path(args.json).read_text())
        arguments = saved.get("arguments", "")
        write_section("inference", report(saved["machine"], saved["results"], arguments))
        return
    arguments = " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    if args.case:
        print(json.dumps(CASES[args.case](**json.loads(args.case_args))), flush=True)
        return
    machine = describe_machine()
    print("machine:", json.dumps(machine))
    print(f"protocol: {PROTOCOL}")
    records = []
    work = HERE / "_work"
    work.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as folder:
        for name, function, kwargs in case_plan(args):
            if name in args.skip:
                continue
            interpreter = sys.executable
            if name == "tiled3d":
                write_volume(list(args.size3d), folder)
                kwargs = dict(kwargs, folder=folder)
            if name == "careamics2d":
                interpreter = args.careamics_python
                if not Path(interpreter).exists():
                    print(f"  careamics2d skipped: no CAREamics environment at {interpreter}")
                    continue
            record = run_case(interpreter, function, **kwargs)
            if record is not None:
                records.append(record)
    machine["load_average_end"] = os.getloadavg()[0]
    print(
        "load average (1 min) at start/end:",
        machine["load_average_start"],
        machine["load_average_end"],
    )
    machine["date"] = time.strftime("%Y-%m-%d")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(
        json.dumps({"machine": machine, "results": records, "arguments": arguments}, indent=2)
    )
    print(f"wrote {args.json}; rebuild the docs with --write-docs")


PROTOCOL = (
    "default U-Net (depth 2, 32 base channels, no batch norm) in eval mode with random "
    "weights, float32, torch's default threads; one process per case; throughput = image "
    "voxels (halos not counted) / wall time, reading and writing included"
)
SECTION = "## Inference speed and memory (issue #2) — `benchmarks/inference.py`"


def report(machine: dict, records: list[dict], arguments: str) -> str:
    """The docs section for these results."""
    by_case = {r["case"]: r for r in records}
    rows = [
        "| case | image | tiles | time (s) | Mvox/s | peak RSS (MiB) | beyond one forward pass (MiB) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in records:
        beyond = (
            f"{r['peak_beyond_model_mb']:.0f}" if r["case"].startswith(("tiled", "ours")) else "-"
        )
        rows.append(
            f"| {r['case']} | {'x'.join(map(str, r['shape']))} | {r.get('plan', 'whole array')} "
            f"| {r['seconds']:.1f} | {r['mvox_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {beyond} |"
        )
    lines = []
    for key, case, ratio_of in [
        ("tiled 2D / bare network (channels-last, one big tensor)", "tiled2d", "whole2d"),
        ("tiled 3D from zarr / bare 3D network (channels-last)", "tiled3d", "whole3d"),
    ]:
        if case in by_case and ratio_of in by_case:
            bare = by_case[ratio_of]["bare_channels_last_mvox_per_s"]
            naive = by_case[ratio_of]["mvox_per_s"]
            value = by_case[case]["mvox_per_s"]
            lines.append(
                f"- {key}: **{value / bare:.2f}x** (naive whole-array call: {value / naive:.2f}x)"
            )
    if "ours2d_same" in by_case and "careamics2d" in by_case:
        ratio = by_case["ours2d_same"]["mvox_per_s"] / by_case["careamics2d"]["mvox_per_s"]
        version = by_case["careamics2d"].get("version", "?")
        lines.append(
            f"- selfdenoise / CAREamics {version}, same tile, overlap, batch and U-Net size: **{ratio:.2f}x**"
        )
    if "tiled3d" in by_case:
        lines.append(
            f"- 3D streamed zarr to zarr: peak RSS {by_case['tiled3d']['peak_rss_mb']:.0f} MiB, "
            f"**{by_case['tiled3d']['peak_beyond_model_mb']:.0f} MiB** beyond one forward pass"
        )
    load = machine["load_average_start"]
    loaded = (
        f" Other jobs shared the machine (1-minute load average {load:.1f} on "
        f"{machine['cores']} cores just before the run), so absolute figures are pessimistic."
        if load > 0.5
        else f" The machine was idle before the run (1-minute load average {load:.1f})."
    )
    return "\n".join([
        SECTION,
        "",
        f"Written by `{' '.join(['python benchmarks/inference.py', arguments]).strip()}` (run on "
        f"{machine.get('date', 'the date of the run')}).",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), Python {machine['python']}, no GPU.{loaded}",
        f"Protocol: {PROTOCOL}. `whole*` is the naive call (pad, normalise, one forward pass) "
        "and, in the summary, the bare network on the same tensor in channels-last format. "
        "`ours2d_same` and `careamics2d` use the same tile, overlap (24 per side = 48 "
        "between tiles), batch of 4, and a U-Net of the same size with batch norm (CAREamics' "
        "default).",
        "",
        *rows,
        "",
        *lines,
        "",
        NOTES,
    ]) + "\n"  # fmt: skip


NOTES = """How the tiled path gets there:

- Tiles are batched, read and normalised on a background thread while the network runs,
  and their results written on the same thread; two input buffers are reused (pinned on
  CUDA, sent with `non_blocking`).
- The network runs in channels-last memory format (oneDNN and cuDNN convolutions are about
  1.5x faster in it on this CPU in 2D, 1.3x in 3D), under `torch.inference_mode`, with
  bf16/fp16 autocast on CUDA (`half='auto'`).
- The default tile is the one that computes the fewest voxels (halos included) within the
  memory budget (a quarter of free RAM, at most 4 GiB of activations, on the CPU; half of
  the free GPU memory on CUDA); the default overlap is the receptive radius, which makes
  the result equal to whole-image prediction. In 3D that halo (23 voxels for the default
  U-Net) is what costs most: `overlap=` smaller than the radius trades exactness for speed
  (use `blend='hann'` then).
- Output is written one slab of tiles at a time (the axis cut into the most tiles), so
  zarr chunks are written once and memory stays bounded; with `blend='hann'` the slab
  accumulates weighted predictions and their weights.

CAREamics was installed into a separate environment (`benchmarks/_work/careamics-venv`,
made by `scripts/careamics-env.sh`)
with `--no-deps` plus its runtime dependencies, because the torchvision version it pins
has no build for torch 2.13 here; an empty `torchvision` stand-in is registered before
importing it (only its LVAE models use torchvision). Its prediction runs through
`CAREamist.predict(array, tile_size=..., tile_overlap=..., batch_size=...)`."""


if __name__ == "__main__":
    main()
