"""Quality benchmark (issue #5): Set12, Gaussian sigma 25, every method with its default recipe.

Each Set12 image (``../shared/data/set12`` relative to the repository root) gets a seeded
noisy version (clean = img / 255, noisy = clean + N(0, (sigma/255)^2), one stream per image,
no clipping). Every self-supervised method trains a fresh model on that noisy image alone for a
fixed CPU wall-clock budget (``Denoiser(method, 'YX', max_minutes=b, epochs=10**6)``, so the
learning-rate schedule is annealed within the budget), then predicts the image; PSNR and SSIM
use ``data_range=1``. scikit-image NL-means and BM3D (``bm3d`` package) run in the same session,
each twice: with the noise sigma estimated from the image (what a user gets) and with the
strength that is best for that image against the clean one (a per-image sweep, the strongest
classical anchor; ``_baselines.sweep_strength``).
Results are appended to a JSON-lines file and the ``quality`` section of
``docs/benchmarks.md`` is rebuilt from it (``--write-docs``).

The full protocol (12 images x 5 methods x 1/3/10 minutes) takes about 14 hours on 2 cores;
``--images``, ``--methods`` and ``--budgets`` select a subset, ``--quick`` runs image 05 at
1 minute.

On a machine shared with other jobs, wall-clock budgets are not comparable: ``--steps``
gives step budgets instead (``--steps 600,1800``: the steps a method makes in 1 and 3
CPU-minutes at a measured ms/step), and ``--threads 1`` keeps the runs robust to the load.
``--cpu-minutes 1,3`` does the same from ``benchmarks/calibration.json`` (quiet-machine
steps per minute of each method, re-measured with ``--measure-calibration``), so every
method gets the steps it would make in that many CPU-minutes.
``--crop 256`` trains and scores on the centre crop of each image (small runs).

Examples
--------
python benchmarks/quality.py --images 01,05 --budgets 1,3
python benchmarks/quality.py --methods noise2same,n2v2 --images 05,07,11 --steps 300 \
    --threads 1 --crop 256
python benchmarks/quality.py --methods neighbor2neighbor --images 05 --budgets 10
python benchmarks/quality.py --methods "" --images all      # the classical rows only
python benchmarks/quality.py --cpu-minutes 1,3 --tta --no-classical --threads 2
python benchmarks/quality.py --write-docs --notes notes.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _baselines as base
from _calibration import (
    CALIBRATION,
    CPU_AMP_MODES,
    cpu_minutes_label,
    cpu_precision,
    load_calibration,
    measure_calibration,
    measure_calibration_bf16,
    measure_calibration_no_regulariser,
    steps_for,
)
from _report import (
    RESULTS,
    append_record,
    machine_line,
    machines_line,
    markdown_table,
    records_for_docs,
    write_section,
)

DEFAULT_OUT = RESULTS / "quality.jsonl"
SELF_SUPERVISED = ("neighbor2neighbor", "noise2same", "n2v", "n2v2", "noise2self")


def run(args: argparse.Namespace) -> None:
    """Run every requested image, method and budget; append the results to ``args.out``."""
    if args.joint:
        run_joint(args)
        return
    images = base.load_set12(args.images)
    for name, clean in images.items():
        if args.crop:
            clean = _centre_crop(clean, args.crop)
        noisy = base.add_gaussian_noise(clean, args.sigma, args.seed, int(name))
        noisy_psnr, noisy_ssim = base.scores(clean, noisy)
        _record(base.Result(name, "noisy input", "-", "-", noisy_psnr, noisy_ssim), args)
        if args.classical:
            for result in base.classical(clean, noisy, name, sweep=True):
                _record(result, args)
        for budget in args.cpu_minutes or args.steps or args.budgets:
            for method in args.methods:
                results = base.run_deep(
                    clean,
                    noisy,
                    name,
                    method,
                    _recipe(args),
                    **_budget(args, method, budget),
                    settings=_settings(args),
                    tta=args.tta,
                    row_name=_row_name(args, method),
                    restore=args.restore,
                    collaborative=args.collaborative,
                )
                for result in results:
                    _record(result, args)
            if args.careamics and not args.cpu_minutes:
                result = base.run_careamics(clean, noisy, name, budget)
                if result is not None:
                    _record(result, args)


def run_joint(args: argparse.Namespace) -> None:
    """One model per method and budget on all the images at once (``--joint``)."""
    if not (args.steps or args.cpu_minutes):
        raise SystemExit("--joint needs --steps or --cpu-minutes (a step budget)")
    clean = {
        name: _centre_crop(image, args.crop) if args.crop else image
        for name, image in base.load_set12(args.images).items()
    }
    noisy = {
        name: base.add_gaussian_noise(image, args.sigma, args.seed, int(name))
        for name, image in clean.items()
    }
    for budget in args.cpu_minutes or args.steps or args.budgets:
        for method in args.methods:
            per_image = _budget(args, method, budget)
            label = f"{per_image.get('label', str(per_image['steps']) + ' steps')} per image, joint"
            results = base.run_deep_joint(
                clean,
                noisy,
                method,
                steps=per_image["steps"] * len(noisy),
                label=label,
                recipe=_recipe(args, joint=True),
                tta=args.tta,
                settings=_settings(args),
                row_name=_row_name(args, method),
                collaborative=args.collaborative,
            )
            for result in results:
                _record(result, args)


def _settings(args: argparse.Namespace) -> dict:
    """``Denoiser`` settings of every run: the seed, ``--amp``, ``--network`` overrides and
    ``--settings``."""
    network = {"network": args.network} if args.network else {}
    return {"seed": args.seed, "amp": args.amp, **network, **args.settings}


def _overrides(args: argparse.Namespace) -> str:
    """``"depth 3, base_channels 32"`` for ``--network`` overrides, then ``"bf16"`` when the
    run autocasts to bf16; ``""`` for the default network in float32."""
    overrides = {**args.network, **args.settings}
    parts = [f"{key} {value}" for key, value in overrides.items()]
    return ", ".join(parts + ([args.precision] if args.precision else []))


def _recipe(args: argparse.Namespace, joint: bool = False) -> str:
    """The ``recipe`` field of the results: ``"default"``, then the crop, the ``--network``
    overrides and ``joint`` when they apply, e.g. ``"default, depth 3, joint"``."""
    parts = ["default"]
    if args.crop:
        parts.append(f"{args.crop} crop")
    if _overrides(args):
        parts.append(_overrides(args))
    if joint:
        parts.append("joint")
    return ", ".join(parts)


def _row_name(args: argparse.Namespace, method: str) -> str:
    """``method``, or ``"method [depth 3, bf16]"`` with ``--network`` overrides or bf16."""
    return f"{method} [{_overrides(args)}]" if _overrides(args) else method


def _budget(args: argparse.Namespace, method: str, budget: float) -> dict:
    """``run_deep`` budget arguments: minutes, steps, or CPU-minutes as calibrated steps
    (divided by ``--step-cost`` for a network that costs more per step than the default)."""
    if args.cpu_minutes:
        rate = steps_for(method, budget, args.rates, precision=args.precision)
        steps = round(rate / args.step_cost)
        return {"steps": steps, "label": cpu_minutes_label(budget)}
    return {"steps": int(budget)} if args.steps else {"minutes": budget}


def _centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side`` x ``side`` crop (the whole image when it is smaller)."""
    top = max(0, (image.shape[0] - side) // 2)
    left = max(0, (image.shape[1] - side) // 2)
    return image[top : top + side, left : left + side]


def _record(result: base.Result, args: argparse.Namespace) -> None:
    row = asdict(result)
    row["extra"].update(sigma=args.sigma, seed=args.seed, session=args.session, tta=args.tta)
    row["extra"].setdefault("machine", args.machine)
    append_record(args.out, row)
    print(
        f"{row['image']:>3} {row['method']:>18} {row['budget']:>7} PSNR {row['psnr']:6.2f} "
        f"SSIM {row['ssim']:.3f} train {row['train_seconds']:6.1f}s "
        f"predict {row['predict_seconds']:5.2f}s steps {row['steps']}",
        flush=True,
    )


def per_image_table(rows: list[dict]) -> str:
    """PSNR / SSIM per image (columns) for every method and budget (rows), plus the mean."""
    images = sorted({r["image"] for r in rows})
    keys = sorted({(r["method"], r["budget"]) for r in rows}, key=_order)
    lines = []
    for method, budget in keys:
        cells, psnrs, seconds = [], [], []
        for image in images:
            match = [
                r for r in rows if (r["method"], r["budget"], r["image"]) == (method, budget, image)
            ]
            if match:  # the newest result of each image
                psnr, ssim = match[-1]["psnr"], match[-1]["ssim"]
                psnrs.append(psnr)
                seconds.append(match[-1]["train_seconds"] + match[-1]["predict_seconds"])
                cells.append(f"{psnr:.2f} / {ssim:.3f}")
            else:
                cells.append("")
        lines.append(
            [
                method,
                budget,
                *cells,
                f"{np.mean(psnrs):.2f} ({len(psnrs)})",
                f"{np.mean(seconds):.1f}",
            ]
        )
    return markdown_table(["method", "budget", *images, "mean PSNR (n)", "time (s)"], lines)


CLASSICAL_ROWS = (
    "noisy input",
    "nl-means (estimated sigma)",
    "nl-means (best h per image)",
    "bm3d (estimated sigma)",
    "bm3d (best sigma per image)",
)


def _order(key: tuple[str, str]) -> tuple:
    method, budget = key
    rank = {name: k for k, name in enumerate(CLASSICAL_ROWS)}
    minutes = float(budget.split()[0]) if budget != "-" else 0.0
    return (rank.get(method, len(rank)), minutes, method, budget)


def strength_table(rows: list[dict]) -> str:
    """The strength each per-image sweep chose, as a factor of the estimated sigma."""
    images = sorted({r["image"] for r in rows})
    lines = []
    for method in ("nl-means (best h per image)", "bm3d (best sigma per image)"):
        chosen = {r["image"]: r["extra"]["factor"] for r in rows if r["method"] == method}
        if chosen:
            cells = [f"{chosen[i]:.2f}" if i in chosen else "" for i in images]
            lines.append([method, *cells, f"{np.mean(list(chosen.values())):.2f}"])
    if not lines:
        return ""
    return markdown_table(["chosen factor of sigma-hat", *images, "mean"], lines)


TARGET_BUDGETS = ("1 min (steps eq.)", "3 min (steps eq.)")


def _verdict(value: float, *bars: float) -> str:
    return " / ".join("yes" if value >= bar else "no" for bar in bars)


def target_table(
    rows: list[dict], budget: str, variant: str = "", n2v2_variants: tuple[str, ...] = ()
) -> str:
    """Issue 13's Noise2Same targets at one budget, from the newest row of each result.

    Per image with a Noise2Same row at ``budget``: both NL-means settings, N2V2 and Noise2Same
    (plain / TTA), and whether Noise2Same is >= N2V2 and >= each NL-means setting, plain and
    with TTA (TTA against N2V2 with TTA); a last row holds the means over the images that have
    every value. Empty when no image has a Noise2Same row at ``budget``. ``variant`` names the
    rows of a variant, e.g. ``" [bf16]"``: Noise2Same's, and N2V2's where it has them at
    ``budget`` (``n2v2_variants`` names other variants' N2V2 rows to try first), else plain
    N2V2's.
    """
    newest = {(r["method"], r["budget"], r["image"]): r["psnr"] for r in rows}
    n2s = f"noise2same{variant}"
    images = sorted(i for (method, b, i) in newest if method == n2s and b == budget)
    candidates = [f"n2v2{name}" for name in (*n2v2_variants, variant)]
    at_budget = {m for m, b, _ in newest if b == budget}
    n2v2 = next((name for name in candidates if name in at_budget), "n2v2")
    columns = [
        ("nl-means (estimated sigma)", "-"),
        ("nl-means (best h per image)", "-"),
        (n2v2, budget),
        (f"{n2v2} +TTA", budget),
        (n2s, budget),
        (f"{n2s} +TTA", budget),
    ]
    lines, complete = [], []
    for image in images:
        values = [newest.get((method, b, image)) for method, b in columns]
        if None in values:
            lines.append([image, *("" if v is None else f"{v:.2f}" for v in values), "", ""])
            continue
        complete.append(values)
        lines.append([image, *(f"{v:.2f}" for v in values), *_verdicts(values)])
    if not lines:
        return ""
    if complete:
        means = list(np.mean(complete, axis=0))
        lines.append([f"mean ({len(complete)})", *(f"{v:.2f}" for v in means), *_verdicts(means)])
    header = [
        "image",
        "NL-means est.",
        "NL-means best h",
        "N2V2",
        "N2V2 +TTA",
        "Noise2Same",
        "Noise2Same +TTA",
        "N2S >= N2V2 (TTA)",
        "N2S >= NL-means est. / best h (TTA)",
    ]
    return markdown_table(header, lines)


def _verdicts(values: list[float]) -> list[str]:
    nlm_est, nlm_best, n2v2, n2v2_tta, n2s, n2s_tta = values
    return [
        f"{_verdict(n2s, n2v2)} ({_verdict(n2s_tta, n2v2_tta)})",
        f"{_verdict(n2s, nlm_est, nlm_best)} ({_verdict(n2s_tta, nlm_est, nlm_best)})",
    ]


TARGET_VARIANTS = {
    "": ("", TARGET_BUDGETS, ()),
    " [bf16]": (
        ", bf16 training (N2V2 in float32 unless it has bf16 rows)",
        TARGET_BUDGETS,
        (),
    ),
    " [bf16] +restore": (
        ", bf16 training, both methods with the detail restoration step (`--restore`; N2V2's"
        " bf16 network alone where it has no such rows: 1 minute)",
        TARGET_BUDGETS,
        (" [bf16] +restore", " [bf16]"),
    ),
    " [bf16] +collab": (
        ", bf16 training, Noise2Same with its default steps after prediction (`--collaborative`:"
        " the detail restoration, then the collaborative Wiener step); N2V2 with the detail"
        " restoration where it has such rows (3 minutes), else its bf16 network alone; its"
        " +collab rows were not run",
        TARGET_BUDGETS,
        (" [bf16] +restore", " [bf16]"),
    ),
    " [bf16] (joint)": (
        ", bf16 training, one model per method trained on all 12 images (`--joint`)",
        tuple(f"{budget} per image, joint" for budget in TARGET_BUDGETS),
        (),
    ),
}
"""Row-name suffix of a variant: the words its target tables add, their budgets, and the
variants whose N2V2 rows the tables compare with first (then the variant's own, then
plain N2V2's)."""


def _target_tables(rows: list[dict]) -> list[str]:
    parts = []
    for variant, (words, budgets, n2v2_variant) in TARGET_VARIANTS.items():
        for budget in budgets:
            table = target_table(rows, budget, variant, n2v2_variant)
            if table:
                parts += [f"Noise2Same's targets (issue 13) at {budget}{words}, PSNR dB:", table]
    return parts


def write_docs(path: Path, notes: str) -> None:
    """Rebuild the ``quality`` section of docs/benchmarks.md from the results file."""
    rows = records_for_docs(path)
    text = "\n\n".join(
        [
            "## Quality on Set12 (issue #5) — `benchmarks/quality.py`",
            machines_line([r["extra"].get("machine") for r in rows]),
            notes.strip(),
            "PSNR (dB) / SSIM per image; time = training + prediction per image (for a "
            "classical row: one run at the chosen strength).",
            per_image_table(rows),
            *_target_tables(rows),
            *(
                [
                    "Strength chosen per image by the sweeps (h / sigma-hat for NL-means, "
                    "sigma_psd / sigma-hat for BM3D):",
                    strength_table(rows),
                ]
                if strength_table(rows)
                else []
            ),
        ]
    )
    write_section("quality", text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="all", help="Set12 names, e.g. 01,05 ('all')")
    parser.add_argument("--methods", default=",".join(SELF_SUPERVISED))
    parser.add_argument("--budgets", default="1,3,10", help="CPU minutes per training run")
    parser.add_argument("--steps", default="", help="step budgets instead of minutes, e.g. 300,900")
    parser.add_argument(
        "--cpu-minutes",
        default="",
        help="equal CPU-minute budgets, e.g. 1,3: each method gets the steps it makes in that "
        "time on a quiet machine (--calibration); rows read '1 min (steps eq.)'",
    )
    parser.add_argument("--calibration", type=Path, default=CALIBRATION)
    parser.add_argument(
        "--network",
        default="",
        help="network overrides of every method, JSON, e.g. '{\"depth\": 3}'; rows read "
        '"<method> [depth 3]"',
    )
    parser.add_argument(
        "--settings",
        default="",
        help="other Denoiser settings of every run, JSON, e.g. '{\"lambda_inv\": 0.6}' or "
        '\'{"regulariser_weight": 0}\'; rows read "<method> [lambda_inv 0.6]"',
    )
    parser.add_argument(
        "--amp",
        choices=CPU_AMP_MODES,
        default="auto",
        help="training precision, as Denoiser(amp=...) ('auto': bf16 on CPUs "
        "with AMX or AVX-512 BF16); bf16 rows read '<method> [bf16]' and take the calibrated bf16 rates",
    )
    parser.add_argument(
        "--step-cost",
        type=float,
        default=1.0,
        help="with --cpu-minutes: ms/step of the --network variant over the default's, "
        "measured at the same threads; the calibrated steps are divided by it",
    )
    parser.add_argument(
        "--measure-calibration",
        action="store_true",
        help="re-measure --calibration (30 s per method of --methods; only on a quiet machine)",
    )
    parser.add_argument(
        "--measure-calibration-gamma0",
        action="store_true",
        help="measure Neighbor2Neighbor's rates without its regulariser (float32 and bf16), "
        "paired with windows at the paper's weight",
    )
    parser.add_argument("--crop", type=int, default=0, help="centre crop side (0: whole image)")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tta", action="store_true", help="8-fold flip/rotation averaging")
    parser.add_argument(
        "--restore",
        action="store_true",
        help="also score the same models with the detail restoration step (rows "
        "'<method> +restore', '<method> +restore +TTA'); the plain rows never use it",
    )
    parser.add_argument(
        "--collaborative",
        action="store_true",
        help="also score the same models with their default steps after prediction (their "
        "detail restoration, if any, then the collaborative Wiener step; rows "
        "'<method> +collab', '<method> +collab +TTA')",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-classical", dest="classical", action="store_false")
    parser.add_argument(
        "--careamics",
        action="store_true",
        help="also train CAREamics N2V (benchmarks/_work/careamics-venv) with the same budget",
    )
    parser.add_argument(
        "--joint",
        action="store_true",
        help="one model per method on all --images at once, with the per-image step budget "
        "times the number of images (needs --steps or --cpu-minutes)",
    )
    parser.add_argument("--quick", action="store_true", help="image 05 at 1 minute")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--session", default=time.strftime("%Y-%m-%d %H:%M"))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--notes", type=Path, help="markdown file with the text of the section")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.budgets = "05", "1"
    args.images = list(base.SET12_NAMES) if args.images == "all" else args.images.split(",")
    args.methods = [m for m in args.methods.split(",") if m]
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    args.steps = [int(b) for b in args.steps.split(",") if b]
    args.cpu_minutes = [float(b) for b in args.cpu_minutes.split(",") if b]
    args.rates = load_calibration(args.calibration) if args.cpu_minutes else {}
    args.network = _json_object(parser, "--network", args.network)
    args.settings = _json_object(parser, "--settings", args.settings)
    args.precision = cpu_precision(args.amp, 2)
    if args.step_cost <= 0:
        parser.error(f"--step-cost must be positive, got {args.step_cost:g}")
    if args.step_cost != 1.0 and not args.cpu_minutes:
        parser.error("--step-cost divides calibrated steps: give --cpu-minutes too")
    return args


def _json_object(parser: argparse.ArgumentParser, option: str, text: str) -> dict:
    """``option``'s JSON text as a dict; a one-line argument error unless it is an object."""
    if not text:
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        parser.error(f"{option} is not JSON ({error.msg}): write e.g. '{{\"depth\": 3}}'")
    if not isinstance(overrides, dict):
        parser.error(f"{option} must be a JSON object of settings, e.g. '{{\"depth\": 3}}'")
    return overrides


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.write_docs:
        write_docs(args.out, args.notes.read_text() if args.notes else "")
        return
    import torch

    torch.set_num_threads(args.threads)
    if args.measure_calibration_gamma0:
        measure_calibration_no_regulariser(path=args.calibration)
        return
    if args.measure_calibration:
        if args.precision:
            measure_calibration_bf16(args.methods, args.calibration)
        else:
            measure_calibration(args.methods, args.calibration, threads=args.threads)
        return
    args.machine = machine_line()
    print(f"machine: {args.machine}", flush=True)
    run(args)


if __name__ == "__main__":
    main()
