"""CPU-budget benchmark (issue #6): which recipe denoises best in 1, 3 and 10 CPU-minutes.

Each recipe (method + network + training settings, :data:`RECIPES`) is trained from scratch on
each noisy image alone and scored against the clean image; NL-means and BM3D run in the same
session. Three kinds of budget:

- ``--budgets 1,3,10``: wall-clock minutes per training run (the schedule is annealed
  over the budget, as a user's ``max_minutes`` run);
- ``--gmac 2000``: equal estimated compute, converted to a step budget per recipe with
  :func:`step_cost` (use this on a busy machine, where wall-clock time means little);
- ``--steps 200``: a plain step budget.

``--volume`` runs the 3D part: a seeded Poisson-Gaussian volume (48x256x256 by default),
deep recipes at the given minutes against NL-means 3D and BM3D slice by slice, total time
(train + predict) next to PSNR. Every result is appended to a JSON-lines file
(``--out``, default ``benchmarks/results/cpu_budget.jsonl``); ``--write-docs`` rebuilds the
``cpu-budget`` section of ``docs/benchmarks.md`` from that file.

Examples
--------
python benchmarks/cpu_budget.py --images 05 --gmac 2000 --recipes n2n,n2v2
python benchmarks/cpu_budget.py --images 01,05,08 --budgets 1,3
python benchmarks/cpu_budget.py --volume --budgets 3 --recipes n2n-3d
python benchmarks/cpu_budget.py --write-docs
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _baselines as base
from _report import (
    RESULTS,
    append_record,
    machine_line,
    markdown_table,
    records_for_docs,
    write_section,
)

DEFAULT_OUT = RESULTS / "cpu_budget.jsonl"

RECIPES: dict[str, dict] = {
    # previous defaults (before issue #6)
    "n2s-old": {
        "method": "noise2same",
        "settings": {
            "network": {
                "residual_blocks": True,
                "batch_norm": True,
                "depth": 2,
                "base_channels": 32,
            },
            "learning_rate": 1e-3,
            "schedule": "cosine",
            "batch_size": 16,
        },
    },
    "n2v2-old": {
        "method": "n2v2",
        "settings": {
            "network": {"depth": 2, "base_channels": 32},
            "masking": {"fraction": 0.02},
            "learning_rate": 1e-3,
            "schedule": "cosine",
            "batch_size": 16,
        },
    },
    # current defaults of each method, as a user gets them
    "n2s": {"method": "noise2same", "settings": {}},
    "n2v": {"method": "n2v", "settings": {}},
    "n2v2": {"method": "n2v2", "settings": {}},
    "n2self": {"method": "noise2self", "settings": {}},
    "n2n": {"method": "neighbor2neighbor", "settings": {}},
    # variations explored
    "n2s-plain": {
        "method": "noise2same",
        "settings": {"network": {"residual_blocks": False, "batch_norm": False}},
    },
    "n2v2-10pct": {"method": "n2v2", "settings": {"masking": {"fraction": 0.10}}},
    "n2n-b16": {"method": "neighbor2neighbor", "settings": {"base_channels": 16}},
    "n2n-b24": {"method": "neighbor2neighbor", "settings": {"base_channels": 24}},
    "n2n-d3b24": {"method": "neighbor2neighbor", "settings": {"depth": 3, "base_channels": 24}},
    "n2n-lr1e3": {
        "method": "neighbor2neighbor",
        "settings": {"learning_rate": 1e-3, "schedule": "cosine"},
    },
    "n2n-lr3e3": {
        "method": "neighbor2neighbor",
        "settings": {"learning_rate": 3e-3, "schedule": "onecycle"},
    },
    "n2n-b16-lr3e3": {
        "method": "neighbor2neighbor",
        "settings": {"base_channels": 16, "learning_rate": 3e-3, "schedule": "onecycle"},
    },
    "n2n-b24-lr3e3": {
        "method": "neighbor2neighbor",
        "settings": {"base_channels": 24, "learning_rate": 3e-3, "schedule": "onecycle"},
    },
    "n2n-b32-lr3e3": {
        "method": "neighbor2neighbor",
        "settings": {"base_channels": 32, "learning_rate": 3e-3, "schedule": "onecycle"},
    },
    "n2n-p128b4": {
        "method": "neighbor2neighbor",
        "settings": {"patch_shape": (128, 128), "batch_size": 4},
    },
    "n2n-p256b1": {
        "method": "neighbor2neighbor",
        "settings": {"patch_shape": (256, 256), "batch_size": 1},
    },
    "n2n-bn": {
        "method": "neighbor2neighbor",
        "settings": {"network": {"residual_blocks": True, "batch_norm": True}},
    },
    # 3D
    "n2n-3d": {"method": "neighbor2neighbor", "settings": {"batch_size": 4}},
    "n2n-2d-slices": {"method": "neighbor2neighbor", "axes": "SYX", "settings": {}},
    "n2v2-3d": {"method": "n2v2", "settings": {"batch_size": 4}},
}
"""Named recipes: method plus settings on top of the method's defaults."""

_PASS_FACTOR = {"noise2same": 6.0, "neighbor2neighbor": 1.75}
"""Forward-pass equivalents per patch pixel and step (backward = 2 forwards): blind-spot
methods 3; Noise2Same 6 (two passes with gradients); Neighbor2Neighbor 1 no-grad pass + 3 on
a quarter of the pixels."""


def recipe_config(name: str, ndim: int = 2):
    """The :class:`~selfdenoise.config.DenoiserConfig` of a recipe."""
    from selfdenoise.config import make_config

    recipe = RECIPES[name]
    return make_config(recipe["method"], "ZYX" if ndim == 3 else "YX", **recipe["settings"])


def step_cost(name: str, ndim: int = 2) -> float:
    """Estimated multiply-accumulates of one training step of a recipe."""
    from selfdenoise.config import cpu_batch
    from selfdenoise.nets import flops_per_pixel
    from selfdenoise.patches import default_patch_shape

    spatial_dims = 2 if RECIPES[name].get("axes") == "SYX" else ndim
    config = recipe_config(name, spatial_dims)
    patch = config.training.patch_shape or default_patch_shape(spatial_dims)
    per_pixel = flops_per_pixel(config.network, spatial_dims, 1)
    factor = _PASS_FACTOR.get(config.method, 3.0)
    batch = config.training.batch_size or cpu_batch(spatial_dims)  # None: the CPU recipe
    return batch * math.prod(patch) * per_pixel * factor


def _record(result: base.Result, out: Path, **extra) -> None:
    row = asdict(result)
    row["extra"].update(extra)
    append_record(out, row)
    print(
        f"{row['image']:>6} {row['method']:>18} {row['recipe']:>12} {row['budget']:>12} "
        f"PSNR {row['psnr']:6.2f} SSIM {row['ssim']:.3f} train {row['train_seconds']:6.1f}s "
        f"predict {row['predict_seconds']:5.2f}s steps {row['steps']}",
        flush=True,
    )


def run_images(args: argparse.Namespace) -> None:
    """2D part: every recipe and budget on every requested Set12 image."""
    images = base.load_set12(args.images)
    for name, clean in images.items():
        noisy = base.add_gaussian_noise(clean, args.sigma, args.seed, int(name))
        if args.classical:
            for result in base.classical(clean, noisy, name):
                _record(result, args.out, sigma=args.sigma, session=args.session)
        for recipe in args.recipes:
            for budget in _budgets(args, recipe, ndim=2):
                for result in _run_recipe(clean, noisy, name, recipe, budget, args.tta):
                    _record(
                        result,
                        args.out,
                        sigma=args.sigma,
                        session=args.session,
                        gmac=step_cost(recipe) * result.steps / 1e9,
                    )


def run_volume(args: argparse.Namespace) -> None:
    """3D part: deep recipes vs NL-means 3D and BM3D slice by slice, total time."""
    noisy, clean = base.poisson_gaussian_volume(tuple(args.volume_shape), seed=args.seed)
    label = "vol" + "x".join(map(str, args.volume_shape))
    if args.classical:
        out, seconds = base.nl_means(noisy)
        _record(
            base.Result(
                label,
                "nl-means-3d",
                "skimage fast 3D",
                "-",
                *base.scores(clean, out),
                predict_seconds=seconds,
            ),
            args.out,
            session=args.session,
        )
        if base.bm3d_available():
            out, seconds = base.bm3d_denoise(noisy)
            _record(
                base.Result(
                    label,
                    "bm3d-slices",
                    "bm3d per slice",
                    "-",
                    *base.scores(clean, out),
                    predict_seconds=seconds,
                ),
                args.out,
                session=args.session,
            )
    for recipe in args.recipes:
        for budget in _budgets(args, recipe, ndim=3):
            for result in _run_recipe(clean, noisy, label, recipe, budget, args.tta, ndim=3):
                _record(
                    result,
                    args.out,
                    session=args.session,
                    gmac=step_cost(recipe, 3) * result.steps / 1e9,
                )


def _budgets(args: argparse.Namespace, recipe: str, ndim: int) -> list[tuple[str, float]]:
    if args.steps:
        return [("steps", s) for s in args.steps]
    if args.gmac:
        return [("steps", max(1, round(g * 1e9 / step_cost(recipe, ndim)))) for g in args.gmac]
    return [("minutes", m) for m in args.budgets]


def _run_recipe(clean, noisy, image, recipe, budget, tta, ndim=2) -> list[base.Result]:
    kind, value = budget
    spec = RECIPES[recipe]
    settings = dict(spec["settings"])
    settings.setdefault("num_threads", None)
    settings.setdefault("amp", "off")  # the recipes were compared in float32; bf16 is quality.py's
    kwargs = {"minutes": value} if kind == "minutes" else {"steps": int(value)}
    axes = spec.get("axes", "ZYX" if ndim == 3 else "YX")
    return base.run_deep(
        clean,
        noisy,
        image,
        spec["method"],
        recipe,
        tta=tta,
        settings=settings,
        axes=axes,
        **kwargs,
    )


# ------------------------------------------------------------------------------------ report


def summary_table(rows: list[dict]) -> str:
    """Mean PSNR/SSIM (and images count) per method, recipe and budget."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["method"], row["recipe"], row["budget"], row["image"].startswith("vol"))
        groups.setdefault(key, []).append(row)
    lines = []
    for (method, recipe, budget, volume), items in sorted(groups.items(), key=_sort_key):
        lines.append(
            [
                "3D volume" if volume else "Set12",
                method,
                recipe,
                budget,
                ",".join(sorted({r["image"] for r in items})),
                float(np.mean([r["psnr"] for r in items])),
                float(np.mean([r["ssim"] for r in items])),
                float(np.mean([r["train_seconds"] + r["predict_seconds"] for r in items])),
                int(np.mean([r["steps"] for r in items])),
                round(float(np.mean([r["extra"].get("gmac", 0.0) for r in items]))),
            ]
        )
    header = [
        "data",
        "method",
        "recipe",
        "budget",
        "images",
        "PSNR",
        "SSIM",
        "time (s)",
        "steps",
        "GMAC",
    ]
    return markdown_table(header, lines)


def _sort_key(item) -> tuple:
    (method, recipe, budget, volume), _ = item
    return (volume, budget, method, recipe)


def write_docs(path: Path, notes: str) -> None:
    """Rebuild the ``cpu-budget`` section of docs/benchmarks.md from ``path``."""
    rows = records_for_docs(path)
    text = "\n\n".join(
        [
            "## CPU budget (issue #6) — `benchmarks/cpu_budget.py`",
            f"Machine: {machine_line()}.",
            notes.strip(),
            "### All recorded runs (mean over the images listed)",
            summary_table(rows),
        ]
    )
    write_section("cpu-budget", text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="05", help="Set12 names, e.g. 01,05 or 'all'")
    parser.add_argument("--recipes", default="n2n,n2v2,n2s", help="comma-separated RECIPES")
    parser.add_argument("--budgets", default="1,3,10", help="minutes per training run")
    parser.add_argument("--gmac", default="", help="compute budgets in GMAC (overrides minutes)")
    parser.add_argument("--steps", default="", help="step budgets (overrides minutes)")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tta", action="store_true", help="8-fold flip/rotation averaging")
    parser.add_argument("--no-classical", dest="classical", action="store_false")
    parser.add_argument("--volume", action="store_true", help="run the 3D volume part instead")
    parser.add_argument("--volume-shape", default="48,256,256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="image 05, 1 minute, 24x128x128 volume"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--session", default=time.strftime("%Y-%m-%d %H:%M"))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--notes", type=Path, help="markdown file with the text of the section")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.budgets, args.volume_shape = "05", "1", "24,128,128"
    args.images = list(base.SET12_NAMES) if args.images == "all" else args.images.split(",")
    args.recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in args.recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    args.gmac = [float(g) for g in args.gmac.split(",") if g]
    args.steps = [int(s) for s in args.steps.split(",") if s]
    args.volume_shape = [int(v) for v in args.volume_shape.split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.write_docs:
        notes = args.notes.read_text() if args.notes else ""
        write_docs(args.out, notes)
        return
    import torch

    torch.set_num_threads(args.threads)
    if args.volume:
        run_volume(args)
    else:
        run_images(args)


if __name__ == "__main__":
    main()
