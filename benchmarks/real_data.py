"""Beyond Set12 (issue #7): real microscopy noise, correlated noise, 3D, and data without truth.

Cases (``--cases``, all by default), each trained from scratch on the noisy data alone for
``--minutes`` of CPU wall-clock time per method (or, with ``--cpu-minutes``, the steps each
method makes in that time on a quiet machine: ``benchmarks/calibration.json``) and compared
with scikit-image NL-means and BM3D (``bm3d`` package) run in the same session. With a clean
reference in 2D the classical filters run twice: with the sigma estimated from the image
(what a user gets) and with the strength best for each image (a per-image sweep):

- ``fmd``: three REAL single-capture / 50-average pairs of the FMD dataset
  (``../shared/data/fmd_pairs``: confocal FISH, widefield BPAE, two-photon-like ``image_R_1``;
  512x512, uint8 / 255). The 50-average has its own intensity scale, so every output is
  fitted to it (least squares ``a D + b``) before PSNR and SSIM (``data_range=1``).
- ``correlated``: Set12 image 05 with Gaussian noise correlated along X (white noise smoothed
  with ``[1, 2, 1]`` along X, rescaled to sigma 25/255), where blind-spot training needs the
  structN2V line mask; N2V with and without it next to the default method.
- ``volume``: the seeded 48x256x256 Poisson-Gaussian volume of ``cpu_budget.py``, trained in
  3D, against NL-means 3D and BM3D slice by slice (each at the estimated sigma and at the
  strength best on a centre crop).
- ``cells3d``: the real confocal nuclei z-stack (60x256x256, percentile-scaled) with added
  seeded Poisson-Gaussian noise, scored against the capture itself (real structure; the
  reference keeps the capture's own, much weaker noise), same rows as ``volume``.
- ``confocal`` and ``ct``: the real confocal nuclei z-stack (60x256x256) and CT stent volume
  (256x128x128) in ``../shared/data``: no clean version, so only the no-reference readouts
  (noise sigma before/after, residual std / input noise, residual-output correlation, EPI
  against the noisy input) are reported.

Each case writes a before/after panel to ``docs/images/bench_<case>.png``; results are
appended to ``benchmarks/results/real_data.jsonl``; ``--write-docs`` rebuilds the ``real-data``
section of ``docs/benchmarks.md`` from the newest session in that file.

Examples
--------
python benchmarks/real_data.py --cases fmd,correlated --minutes 1
python benchmarks/real_data.py --quick            # every case, 6 s of training, small crops
python benchmarks/real_data.py --cases fmd --methods ""    # the classical rows only
python benchmarks/real_data.py --cases fmd --cpu-minutes 1,3 \
    --methods neighbor2neighbor,noise2same,n2v2,n2v,noise2self
python benchmarks/real_data.py --write-docs --notes benchmarks/notes/real_data.md
"""

from __future__ import annotations

import argparse
import sys
import time
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
    measure_calibration_3d,
    measure_calibration_no_regulariser,
    rate_key,
    rate_variant,
    steps_for,
)
from _panels import Tile, crop_2d, save_panel
from _real_data_report import newest_results, report
from _report import IMAGES, RESULTS, SHARED_DATA, append_record, machine_line, write_section

DEFAULT_OUT = RESULTS / "real_data.jsonl"
FMD_PAIRS = {
    "confocal FISH": ("confocal_FISH_3_noisy.png", "confocal_FISH_3_gt.png"),
    "widefield BPAE": ("BPAE_R_noisy.png", "BPAE_R_gt.png"),
    "image_R_1": ("image_R_1_raw001.png", "image_R_1_avg50_gt.png"),
}
NO_REFERENCE = {
    "confocal": ("cells3d_nuclei_3d/nuclei_zyx.tif", "confocal nuclei z-stack"),
    "ct": ("ct_stent_3d/stent_zyx.tif", "CT stent volume"),
}
READOUTS = (
    "noise_sigma_output",
    "residual_std_ratio",
    "residual_output_correlation",
    "epi_vs_noisy",
)


# ------------------------------------------------------------------------------ scoring


def fitted(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``a * image + b`` with ``(a, b)`` the least-squares fit to ``reference``."""
    design = np.stack([image.ravel(), np.ones(image.size)], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(design, reference.ravel(), rcond=None)
    return scale * image + offset


def fitted_scores(clean: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM of ``image`` after its linear fit to ``clean`` (clipped to [-1, 2])."""
    return base.scores(clean, np.clip(fitted(clean, image), -1, 2))


def train_predict(
    noisy: np.ndarray, method: str, budget, axes: str, tta=False, restore=False, **settings
):  # settings may hold collaborative=True
    """Train ``method`` on ``noisy`` within ``budget``; ``{suffix: (output, train_s, predict_s)}``.

    ``budget`` is CPU-minutes of wall-clock time (a float) or ``("steps", n)``. The plain
    prediction (the network's output alone) has the suffix ``""``; with ``tta`` the 8-fold
    flip/rotation average (``predict(tta=True)``) of the same model is added as ``" +TTA"``,
    with ``restore`` the detail restoration step as ``" +restore"`` (and
    ``" +restore +TTA"``), and with ``collaborative=True`` the model's default steps with the
    collaborative Wiener step as ``" +collab"`` (``base.POST_STEPS``)."""
    from selfdenoise import Denoiser

    collaborative = settings.pop("collaborative", False)
    if settings.pop("gat", False):
        settings["collaborative"] = collaborative
        return _train_predict_gat(noisy, method, budget, axes, tta, restore, **settings)
    if isinstance(budget, tuple):
        settings["steps"] = budget[1]
    else:
        settings.update(max_minutes=budget, epochs=10**6)
    model = Denoiser(method, axes, device="cpu", **settings)
    started = time.perf_counter()
    model.fit(noisy)
    train_seconds = time.perf_counter() - started
    results = {}
    for post in base.post_steps(restore, collaborative):
        for with_tta in (False, True) if tta else (False,):
            suffix = base.prediction_suffix(with_tta, post)
            started = time.perf_counter()
            output = model.predict(noisy, tta=with_tta, **base.POST_STEPS[post])
            seconds = time.perf_counter() - started
            results[suffix] = output.astype(np.float64), train_seconds, seconds
    return results


def _train_predict_gat(
    noisy: np.ndarray, method: str, budget, axes: str, tta=False, restore=False, **settings
):
    """:func:`train_predict` in the generalised Anscombe domain of a noise model fitted to
    ``noisy`` alone (``_vst``), outputs mapped back by the unbiased inverse (2D only)."""
    from _vst import fit_noise_model, gat, inverse_gat

    model = fit_noise_model(noisy)
    results = train_predict(gat(noisy, *model), method, budget, axes, tta, restore, **settings)
    return {
        suffix: (inverse_gat(output, *model), *seconds)
        for suffix, (output, *seconds) in results.items()
    }


CLASSICAL_NAMES = {"nl-means": "NL-means", "bm3d": "BM3D"}


def classical_candidates(
    noisy: np.ndarray, clean=None, score=base.scores, bm3d: bool = True, **sweep
) -> dict:
    """NL-means and BM3D outputs: ``{name: (output, 0, seconds, extra)}``.

    With a ``clean`` reference (2D only; ``score(clean, output) -> (psnr, ssim)``) each gets
    an estimated-sigma row and a best-strength-per-image row (``_baselines.classical_sweeps``,
    keyword arguments ``sweep``); without it, only the estimated-sigma setting."""
    if clean is None or noisy.ndim == 3:
        outputs = {}
        out, seconds = base.nl_means(noisy)
        outputs["NL-means" + (" 3D" if noisy.ndim == 3 else "")] = (out, 0.0, seconds, {})
        if bm3d and base.bm3d_available():
            out, seconds = base.bm3d_denoise(noisy)
            outputs["BM3D" + (" per slice" if noisy.ndim == 3 else "")] = (out, 0.0, seconds, {})
        return outputs
    outputs = {}
    for name, found in base.classical_sweeps(noisy, clean, score, **sweep).items():
        _, start, knob = base.CLASSICAL_SETTINGS[name]
        label = CLASSICAL_NAMES[name]
        tried = {f"{k:g}": round(v[0], 3) for k, v in found.tried.items()}
        outputs[f"{label} (estimated sigma)"] = (
            found.start_output,
            0.0,
            found.tried[round(start, 6)][2],
            {"factor": start},
        )
        outputs[f"{label} (best {knob} per image)"] = (
            found.output,
            0.0,
            found.tried[found.factor][2],
            {"factor": found.factor, "tried": tried, "sweep_seconds": found.seconds},
        )
    return outputs


def classical_3d_candidates(
    noisy: np.ndarray, clean: np.ndarray, crop: int = 128, names=("nl-means", "bm3d")
) -> dict:
    """NL-means 3D and BM3D slice by slice at the estimated sigma and at a tuned strength.

    A full-volume sweep costs about a minute per call, so the strength is swept on the centre
    ``crop`` (``crop // 4`` planes) against the clean crop (``_baselines.sweep_strength``) and
    the volume is denoised once more at the chosen factor. ``names`` selects the filters."""
    sigma = base.estimated_sigma(noisy)
    window = tuple(
        slice(max(0, (n - side) // 2), max(0, (n - side) // 2) + side)
        for n, side in zip(noisy.shape, (crop // 4, crop, crop), strict=True)
    )
    outputs = {}
    for name, (denoiser, estimated, knob) in base.CLASSICAL_SETTINGS.items():
        if name not in names or (name == "bm3d" and not base.bm3d_available()):
            continue
        label = "NL-means 3D" if name == "nl-means" else "BM3D per slice"
        out, seconds = denoiser(noisy, estimated, sigma)
        outputs[f"{label} (estimated sigma)"] = (out, 0.0, seconds, {"factor": estimated})
        found = base.sweep_strength(
            lambda f, d=denoiser: d(noisy[window], f, sigma),
            lambda out: base.scores(clean[window], out),
            estimated,
            1.2,
            1,
        )
        out, seconds = denoiser(noisy, found.factor, sigma)
        tried = {f"{k:g}": round(v[0], 3) for k, v in found.tried.items()}
        extra = {"factor": found.factor, "tried_on_crop": tried}
        outputs[f"{label} (best {knob}, chosen on a crop)"] = (out, 0.0, seconds, extra)
    return outputs


def gat_candidates(noisy: np.ndarray, clean: np.ndarray, score=base.scores) -> dict:
    """BM3D after a generalised Anscombe transform (``_vst``), fitted noise model (2D).

    Two rows: ``sigma_psd = 1`` in the stabilised domain (no clean image needed) and the best
    ``sigma_psd`` for the image (a per-image sweep, ``_baselines.sweep_strength``)."""
    from _vst import bm3d_gat, fit_noise_model

    model = fit_noise_model(noisy)
    found = base.sweep_strength(
        lambda f: bm3d_gat(noisy, f, model), lambda out: score(clean, out), 1.0, 1.2, 0
    )
    common = {"noise_model": list(model)}
    tried = {f"{k:g}": round(v[0], 3) for k, v in found.tried.items()}
    return {
        "BM3D + GAT (fitted noise model)": (
            found.start_output,
            0.0,
            found.tried[1.0][2],
            {"factor": 1.0, **common},
        ),
        "BM3D + GAT (best sigma per image)": (
            found.output,
            0.0,
            found.tried[found.factor][2],
            {"factor": found.factor, "tried": tried, "sweep_seconds": found.seconds, **common},
        ),
    }


def deep_candidates(noisy: np.ndarray, methods: dict, args, axes: str) -> dict:
    """Each deep method trained for each budget: ``{name: (output, train_s, predict_s, extra)}``.

    ``methods`` maps a display name to ``(method, settings)``. With ``--cpu-minutes`` every
    budget is converted to the method's calibrated step count and the name gets the budget."""
    outputs = {}
    for minutes in args.cpu_minutes or [args.minutes]:
        for name, (method, settings) in methods.items():
            budget, extra = minutes, {}
            settings = {**settings, "amp": args.amp}
            ndim = 3 if "Z" in axes else 2
            precision = args.precision[ndim]
            if precision:
                name = f"{name} [{precision}]"
            if args.cpu_minutes:
                # Neighbor2Neighbor without its regulariser ('auto' on photon-limited data)
                # makes about twice the steps per CPU-minute: it has its own rate
                variant = rate_variant(method, noisy, settings)
                steps = steps_for(method, minutes, args.rates, ndim, precision, variant)
                budget, extra = ("steps", steps), {"steps": steps, "cpu_minutes": minutes}
                extra["rate"] = rate_key(method, ndim, precision, variant)
                name = f"{name}, {cpu_minutes_label(minutes)}"
            settings["collaborative"] = args.collaborative
            results = train_predict(noisy, method, budget, axes, args.tta, args.restore, **settings)
            for suffix, result in results.items():
                outputs[name + suffix] = (*result, extra)
            print(f"    {name}: trained {results[''][1]:.0f}s", flush=True)
    return outputs


def _row(args, case, image, method, train_s=0.0, predict_s=0.0, extra=None, **values) -> dict:
    row = dict(case=case, image=image, method=method, train_seconds=train_s)
    row.update(predict_seconds=predict_s, minutes=args.minutes, session=args.session, **values)
    row.update(machine=args.machine)
    row.update(extra or {})
    append_record(args.out, row)
    shown = {k: round(v, 3) for k, v in values.items() if isinstance(v, float)}
    print(f"  {case:>10} {image:>16} {method:>24} {shown}", flush=True)
    return row


def _default_methods(args, extra: dict | None = None) -> dict:
    """The default method plus ``extra``; nothing when ``--methods ""`` (classical only)."""
    from selfdenoise.config import DEFAULT_METHOD

    if not args.methods:
        return {}
    methods = {f"{DEFAULT_METHOD} (default)": (DEFAULT_METHOD, {})}
    methods.update(extra or {})
    return methods


def _fmd_methods(args) -> dict:
    """The ``--methods`` by display name (the default method marked): fmd and 3D cases."""
    from selfdenoise.config import DEFAULT_METHOD

    names = {"n2v2": "N2V2", "n2v": "N2V", DEFAULT_METHOD: f"{DEFAULT_METHOD} (default)"}
    methods = {}
    variants = {  # "<method>+gat": trained and predicted after a GAT
        "gat": (" + GAT", {"gat": True}),
        "diagonal": (" (diagonal pairs)", {"neighbour_pairs": "diagonal"}),
        "": ("", {}),
    }
    for entry in args.methods:
        method, _, variant = entry.partition("+")
        suffix, settings = variants[variant]
        name = names.get(method, method) if not settings.get("neighbour_pairs") else method
        methods[name + suffix] = (method, settings)
    return methods


# -------------------------------------------------------------------------------- cases


def case_fmd(args: argparse.Namespace) -> None:
    from skimage.io import imread

    rows = []
    for label, (noisy_name, clean_name) in FMD_PAIRS.items():
        if args.pairs and label not in args.pairs:
            continue
        folder = SHARED_DATA / "fmd_pairs"
        noisy = imread(folder / noisy_name).astype(np.float64) / 255
        clean = imread(folder / clean_name).astype(np.float64) / 255
        if args.quick:
            noisy, clean = noisy[:128, :128], clean[:128, :128]

        outputs = {"noisy": (noisy, 0.0, 0.0, {})}
        # Poisson-dominated: the best sigma lies 5-15x above sigma-hat, found on a crop first.
        outputs.update(
            classical_candidates(
                noisy, clean, fitted_scores, refine=0, coarse=256, names=args.baselines
            )
        )
        if "bm3d-gat" in args.baselines and base.bm3d_available():
            outputs.update(gat_candidates(noisy, clean, fitted_scores))
        outputs.update(deep_candidates(noisy, _fmd_methods(args), args, "YX"))
        tiles = []
        for name, (out, train_s, predict_s, extra) in outputs.items():
            scored = fitted_scores(clean, out)
            _row(
                args, "fmd", label, name, train_s, predict_s, extra, psnr=scored[0], ssim=scored[1]
            )
            tiles.append(Tile(crop_2d(out), name, f"{scored[0]:.2f} dB / {scored[1]:.3f}"))
        rows.append([*tiles, Tile(crop_2d(clean), f"{label}: 50-avg", "reference")])
    if args.methods:  # classical-only runs keep the panel of the last run that trained
        save_panel(rows, IMAGES / "bench_fmd.png")


def _in_panel(name: str, args: argparse.Namespace) -> bool:
    """Panel tiles: no estimated-sigma rows beside the best ones, only the largest budget."""
    if "(estimated sigma)" in name or "(fitted noise model)" in name:
        return False
    return (
        not args.cpu_minutes
        or "min (steps eq.)" not in name
        or name.endswith(cpu_minutes_label(max(args.cpu_minutes)))
    )


def correlated_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``clean`` plus Gaussian noise correlated along X (``[1, 2, 1]`` smoothing), std ``sigma``."""
    from scipy import ndimage as ndi

    white = np.random.default_rng(seed).standard_normal(clean.shape)
    smooth = ndi.correlate1d(white, [1.0, 2.0, 1.0], axis=-1, mode="reflect")
    return clean + smooth / smooth.std() * sigma


CORRELATED_METHODS = {
    "neighbor2neighbor (diagonal pairs)": ("neighbor2neighbor", {"neighbour_pairs": "diagonal"}),
    "N2V": ("n2v", {}),
    "structN2V (X, span 5)": ("n2v", {"struct_axis": -1, "struct_span": 5}),
}
"""What the correlated case trains besides the default method."""


def case_correlated(args: argparse.Namespace) -> None:
    clean = base.load_set12(["05"])["05"]
    if args.quick:
        clean = clean[:128, :128]
    noisy = correlated_noise(clean, 25 / 255, args.seed)
    methods = _default_methods(args, CORRELATED_METHODS)
    outputs = {"noisy": (noisy, 0.0, 0.0, {})}
    outputs.update(classical_candidates(noisy, clean))
    outputs.update(deep_candidates(noisy, methods, args, "YX"))
    tiles = []
    for name, (out, train_s, predict_s, extra) in outputs.items():
        psnr, ssim = base.scores(clean, out)
        _row(args, "correlated", "05", name, train_s, predict_s, extra, psnr=psnr, ssim=ssim)
        tiles.append(Tile(crop_2d(out, (90, 160), 128), name, f"{psnr:.2f} dB / {ssim:.3f}"))
    if not methods:
        return
    save_panel(
        [[*tiles, Tile(crop_2d(clean, (90, 160), 128), "clean")]], IMAGES / "bench_correlated.png"
    )


def case_volume(args: argparse.Namespace) -> None:
    shape = (16, 96, 96) if args.quick else (48, 256, 256)
    noisy, clean = base.poisson_gaussian_volume(shape, seed=args.seed)
    _reference_volume_case(args, "volume", "x".join(map(str, shape)), noisy, clean)


CELLS3D_PHOTONS, CELLS3D_READ_SIGMA = 20.0, 0.02


def cells3d_pair(seed: int = 0, quick: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Real confocal nuclei (cells3d) with added Poisson-Gaussian noise: ``(noisy, reference)``.

    The reference is the capture itself scaled to its 0.1-99.9th percentiles and clipped to
    [0, 1]; it is not noise-free (PSNR against it is bounded), but the structure is real. The
    noisy volume is Poisson with ``CELLS3D_PHOTONS`` expected counts at intensity 1 (rescaled
    back) plus Gaussian read noise ``CELLS3D_READ_SIGMA``, seeded."""
    import tifffile

    volume = tifffile.imread(SHARED_DATA / NO_REFERENCE["confocal"][0]).astype(np.float64)
    if quick:
        volume = volume[:16, :96, :96]
    low, high = np.percentile(volume, [0.1, 99.9])
    reference = np.clip((volume - low) / (high - low), 0.0, 1.0)
    rng = np.random.default_rng([seed, 3])
    noisy = rng.poisson(reference * CELLS3D_PHOTONS) / CELLS3D_PHOTONS
    noisy = noisy + rng.normal(0.0, CELLS3D_READ_SIGMA, reference.shape)
    return noisy.astype(np.float32), reference.astype(np.float32)


def case_cells3d(args: argparse.Namespace) -> None:
    noisy, reference = cells3d_pair(args.seed, args.quick)
    _reference_volume_case(args, "cells3d", "x".join(map(str, noisy.shape)), noisy, reference)


def _reference_volume_case(args, case: str, label: str, noisy, clean) -> None:
    """Classical filters (both settings) and ``--methods`` in 3D, scored against ``clean``."""
    outputs = {"noisy": (noisy, 0.0, 0.0, {})}
    if args.baselines:
        crop = 32 if args.quick else 128
        outputs.update(classical_3d_candidates(noisy, clean, crop, args.baselines))
    outputs.update(deep_candidates(noisy, _fmd_methods(args), args, "ZYX"))
    tiles = []
    for name, (out, train_s, predict_s, extra) in outputs.items():
        psnr, ssim = base.scores(clean, out)
        _row(args, case, label, name, train_s, predict_s, extra, psnr=psnr, ssim=ssim)
        if _in_panel(name, args):
            tiles.append(Tile(crop_2d(out, size=128), name, f"{psnr:.2f} dB / {ssim:.3f}"))
    if not args.methods:
        return
    save_panel(
        [[*tiles, Tile(crop_2d(clean, size=128), "reference (middle plane)")]],
        IMAGES / f"bench_{case}.png",
    )


def case_no_reference(args: argparse.Namespace, case: str) -> None:
    import tifffile

    from selfdenoise.metrics import compare

    path, label = NO_REFERENCE[case]
    volume = tifffile.imread(SHARED_DATA / path).astype(np.float64)
    if args.quick:
        volume = volume[:16, :96, :96]
    low, high = np.percentile(volume, [0.1, 99.9])
    noisy = (volume - low) / (high - low)  # NL-means and BM3D expect roughly [0, 1]
    outputs = classical_candidates(noisy, bm3d=False)
    outputs.update(deep_candidates(noisy, _default_methods(args), args, "ZYX"))
    table = compare({k: v[0] for k, v in outputs.items()}, noisy=noisy, data_range=1.0)
    values = table.to_dict()
    tiles = [
        Tile(
            crop_2d(noisy, size=128),
            "noisy",
            f"noise sigma {values['rows'][0]['noise_sigma_noisy']:.3f}",
        )
    ]
    for row in values["rows"]:
        name = row["name"]
        readouts = {key: float(row[key]) for key in READOUTS}
        readouts["noise_sigma_noisy"] = float(row["noise_sigma_noisy"])
        _row(args, case, label, name, *outputs[name][1:], **readouts)
        subtitle = f"sigma {readouts['noise_sigma_output']:.3f}, r {readouts['residual_output_correlation']:.2f}"
        tiles.append(Tile(crop_2d(outputs[name][0], size=128), name, subtitle))
    if args.methods:
        save_panel([tiles], IMAGES / f"bench_{case}.png", limits_from=-1)


CASES = {
    "fmd": case_fmd,
    "correlated": case_correlated,
    "volume": case_volume,
    "cells3d": case_cells3d,
    "confocal": lambda args: case_no_reference(args, "confocal"),
    "ct": lambda args: case_no_reference(args, "ct"),
}


# ------------------------------------------------------------------------------- report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES)
    )
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per method")
    parser.add_argument(
        "--methods",
        default="neighbor2neighbor,n2v2",
        help="deep methods of the fmd, volume and cells3d cases (confocal and ct train the "
        "default; '<method>+gat' trains after a generalised Anscombe transform, 2D; "
        "'neighbor2neighbor+diagonal' with diagonal pixel pairs); '' trains none",
    )
    parser.add_argument(
        "--cpu-minutes",
        default="",
        help="equal CPU-minute budgets, e.g. 1,3, converted to each method's calibrated steps",
    )
    parser.add_argument("--calibration", type=Path, default=CALIBRATION)
    parser.add_argument(
        "--amp",
        choices=CPU_AMP_MODES,
        default="auto",
        help="training precision, as Denoiser(amp=...) ('auto': bf16 on CPUs with AMX, and "
        "in 2D on CPUs with AVX-512 BF16); "
        "bf16 rows read '<name> [bf16]' and take the calibrated bf16 rates",
    )
    parser.add_argument(
        "--baselines",
        default="nl-means,bm3d,bm3d-gat",
        help="classical baselines of the fmd case (bm3d-gat: BM3D after a variance-"
        "stabilising transform of a fitted Poisson-Gaussian model)",
    )
    parser.add_argument(
        "--measure-calibration-3d",
        action="store_true",
        help="add '<method> 3d' rates of --methods to --calibration (paired with 2D windows)",
    )
    parser.add_argument(
        "--measure-calibration-gamma0-3d",
        action="store_true",
        help="add 'neighbor2neighbor gamma0 3d' to --calibration (paired with weight 2 in 3D)",
    )
    parser.add_argument("--pairs", default="", help="FMD pairs to run, e.g. 'widefield BPAE' (all)")
    parser.add_argument(
        "--tta", action="store_true", help="also predict with 8-fold flip/rotation averaging"
    )
    parser.add_argument(
        "--restore",
        action="store_true",
        help="also predict with the detail restoration step (rows '<name> +restore'); the "
        "plain rows never use it",
    )
    parser.add_argument(
        "--collaborative",
        action="store_true",
        help="also predict with the model's default steps after prediction, the collaborative "
        "Wiener step included (rows '<name> +collab')",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per process")
    parser.add_argument("--quick", action="store_true", help="small crops, 0.1 min: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--session", default=time.strftime("%Y-%m-%d %H:%M"))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--notes", type=Path, default=Path(__file__).parent / "notes" / "real_data.md"
    )
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    args.methods = [m for m in args.methods.split(",") if m]
    args.pairs = [p for p in args.pairs.split(",") if p]
    args.baselines = tuple(b for b in args.baselines.split(",") if b)
    args.cpu_minutes = [float(b) for b in args.cpu_minutes.split(",") if b]
    args.rates = load_calibration(args.calibration) if args.cpu_minutes else {}
    args.precision = {ndim: cpu_precision(args.amp, ndim) for ndim in (2, 3)}
    if args.quick:
        args.minutes = 0.1
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {', '.join(CASES)}")
    missing = _uncalibrated(args)
    if missing:
        parser.error(
            f"no calibrated rate for {', '.join(missing)} in {args.calibration.name}: "
            "pass --amp off (float32 rates) or measure the rate first"
        )
    return args


def _uncalibrated(args: argparse.Namespace) -> list[str]:
    """The rate keys a ``--cpu-minutes`` run of ``args`` needs and the calibration lacks."""
    if not args.cpu_minutes:
        return []
    needed = set()
    for case in args.cases:
        if case == "correlated":
            methods, ndim = _default_methods(args, CORRELATED_METHODS), 2
        elif case in ("confocal", "ct"):
            methods, ndim = _default_methods(args), 3
        else:
            methods, ndim = _fmd_methods(args), 2 if case == "fmd" else 3
        precision = args.precision[ndim]
        needed.update(rate_key(method, ndim, precision) for method, _ in methods.values())
    return sorted(key for key in needed if key not in args.rates)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.write_docs:
        rows = newest_results(args.out)
        write_section("real-data", report(rows, args.notes.read_text(), list(CASES)))
        return
    import torch

    torch.set_num_threads(args.threads)
    if args.measure_calibration_gamma0_3d:
        volume, _ = base.poisson_gaussian_volume((48, 256, 256), seed=args.seed)
        measure_calibration_no_regulariser(("",), args.calibration, volume=volume)
        return
    if args.measure_calibration_3d:
        volume, _ = base.poisson_gaussian_volume((48, 256, 256), seed=args.seed)
        measure_calibration_3d(args.methods, volume, args.calibration)
        return
    args.machine = machine_line()
    print(f"machine: {args.machine}", flush=True)
    for case in args.cases:
        print(f"case {case}", flush=True)
        CASES[case](args)


if __name__ == "__main__":
    main()
