"""Beyond Set12 (issue #7): real microscopy noise, correlated noise, 3D, and data without truth.

Cases (``--cases``, all by default), each trained from scratch on the noisy data alone for
``--minutes`` of CPU wall-clock time per method and compared with scikit-image NL-means and
BM3D (``bm3d`` package) run in the same session:

- ``fmd``: three REAL single-capture / 50-average pairs of the FMD dataset
  (``../shared/data/fmd_pairs``: confocal FISH, widefield BPAE, two-photon-like ``image_R_1``;
  512x512, uint8 / 255). The 50-average has its own intensity scale, so every output is
  fitted to it (least squares ``a D + b``) before PSNR and SSIM (``data_range=1``).
- ``correlated``: Set12 image 05 with Gaussian noise correlated along X (white noise smoothed
  with ``[1, 2, 1]`` along X, rescaled to sigma 25/255), where blind-spot training needs the
  structN2V line mask; N2V with and without it next to the default method.
- ``volume``: the seeded 48x256x256 Poisson-Gaussian volume of ``cpu_budget.py``, trained in
  3D, against NL-means 3D and BM3D slice by slice.
- ``confocal`` and ``ct``: the real confocal nuclei z-stack (60x256x256) and CT stent volume
  (256x128x128) in ``../shared/data``: no clean version, so only the no-reference readouts
  (noise sigma before/after, residual std / input noise, residual-output correlation, EPI
  against the noisy input) are reported.

Each case writes a before/after panel to ``docs/images/bench_<case>.png``; results are
appended to ``benchmarks/_work/real_data.jsonl``; ``--write-docs`` rebuilds the ``real-data``
section of ``docs/benchmarks.md`` from the newest session in that file.

Examples
--------
python benchmarks/real_data.py --cases fmd,correlated --minutes 1
python benchmarks/real_data.py --quick            # every case, 6 s of training, small crops
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
from _panels import Tile, crop_2d, save_panel
from _report import (
    IMAGES,
    SHARED_DATA,
    append_record,
    machine_line,
    markdown_table,
    read_records,
    write_section,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "_work" / "real_data.jsonl"
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


def train_predict(noisy: np.ndarray, method: str, minutes: float, axes: str, **settings):
    """Train ``method`` on ``noisy`` for ``minutes``; return the output and the seconds."""
    from selfdenoise import Denoiser

    model = Denoiser(method, axes, device="cpu", max_minutes=minutes, epochs=10**6, **settings)
    started = time.perf_counter()
    model.fit(noisy)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    output = model.predict(noisy)
    return output.astype(np.float64), train_seconds, time.perf_counter() - started


def candidates(noisy: np.ndarray, methods: dict, minutes: float, axes: str, bm3d: bool = True):
    """Outputs of NL-means, BM3D and each deep method: ``{name: (output, train_s, predict_s)}``.

    ``methods`` maps a display name to ``(method, settings)``."""
    outputs = {}
    out, seconds = base.nl_means(noisy)
    outputs["NL-means" + (" 3D" if noisy.ndim == 3 else "")] = (out, 0.0, seconds)
    if bm3d and base.bm3d_available():
        out, seconds = base.bm3d_denoise(noisy)
        outputs["BM3D" + (" per slice" if noisy.ndim == 3 else "")] = (out, 0.0, seconds)
    for name, (method, settings) in methods.items():
        outputs[name] = train_predict(noisy, method, minutes, axes, **settings)
        print(f"    {name}: trained {outputs[name][1]:.0f}s", flush=True)
    return outputs


def _row(args, case, image, method, train_s=0.0, predict_s=0.0, **values) -> dict:
    row = dict(case=case, image=image, method=method, train_seconds=train_s)
    row.update(predict_seconds=predict_s, minutes=args.minutes, session=args.session, **values)
    append_record(args.out, row)
    shown = {k: round(v, 3) for k, v in values.items() if isinstance(v, float)}
    print(f"  {case:>10} {image:>16} {method:>24} {shown}", flush=True)
    return row


def _default_methods(extra: dict | None = None) -> dict:
    from selfdenoise.config import DEFAULT_METHOD

    methods = {f"{DEFAULT_METHOD} (default)": (DEFAULT_METHOD, {})}
    methods.update(extra or {})
    return methods


# -------------------------------------------------------------------------------- cases


def case_fmd(args: argparse.Namespace) -> None:
    from skimage.io import imread

    rows = []
    for label, (noisy_name, clean_name) in FMD_PAIRS.items():
        folder = SHARED_DATA / "fmd_pairs"
        noisy = imread(folder / noisy_name).astype(np.float64) / 255
        clean = imread(folder / clean_name).astype(np.float64) / 255
        if args.quick:
            noisy, clean = noisy[:128, :128], clean[:128, :128]
        outputs = {"noisy": (noisy, 0.0, 0.0)}
        outputs.update(
            candidates(noisy, _default_methods({"N2V2": ("n2v2", {})}), args.minutes, "YX")
        )
        tiles = []
        for name, (out, train_s, predict_s) in outputs.items():
            scored = base.scores(clean, np.clip(fitted(clean, out), -1, 2))
            _row(args, "fmd", label, name, train_s, predict_s, psnr=scored[0], ssim=scored[1])
            tiles.append(Tile(crop_2d(out), name, f"{scored[0]:.2f} dB / {scored[1]:.3f}"))
        rows.append([*tiles, Tile(crop_2d(clean), f"{label}: 50-avg", "reference")])
    save_panel(rows, IMAGES / "bench_fmd.png")


def correlated_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``clean`` plus Gaussian noise correlated along X (``[1, 2, 1]`` smoothing), std ``sigma``."""
    from scipy import ndimage as ndi

    white = np.random.default_rng(seed).standard_normal(clean.shape)
    smooth = ndi.correlate1d(white, [1.0, 2.0, 1.0], axis=-1, mode="reflect")
    return clean + smooth / smooth.std() * sigma


def case_correlated(args: argparse.Namespace) -> None:
    clean = base.load_set12(["05"])["05"]
    if args.quick:
        clean = clean[:128, :128]
    noisy = correlated_noise(clean, 25 / 255, args.seed)
    methods = _default_methods(
        {
            "N2V": ("n2v", {}),
            "structN2V (X, span 5)": ("n2v", {"struct_axis": -1, "struct_span": 5}),
        }
    )
    outputs = {"noisy": (noisy, 0.0, 0.0)}
    outputs.update(candidates(noisy, methods, args.minutes, "YX"))
    tiles = []
    for name, (out, train_s, predict_s) in outputs.items():
        psnr, ssim = base.scores(clean, out)
        _row(args, "correlated", "05", name, train_s, predict_s, psnr=psnr, ssim=ssim)
        tiles.append(Tile(crop_2d(out, (90, 160), 128), name, f"{psnr:.2f} dB / {ssim:.3f}"))
    save_panel(
        [[*tiles, Tile(crop_2d(clean, (90, 160), 128), "clean")]], IMAGES / "bench_correlated.png"
    )


def case_volume(args: argparse.Namespace) -> None:
    shape = (16, 96, 96) if args.quick else (48, 256, 256)
    noisy, clean = base.poisson_gaussian_volume(shape, seed=args.seed)
    label = "x".join(map(str, shape))
    outputs = {"noisy": (noisy, 0.0, 0.0)}
    outputs.update(candidates(noisy, _default_methods(), args.minutes, "ZYX"))
    tiles = []
    for name, (out, train_s, predict_s) in outputs.items():
        psnr, ssim = base.scores(clean, out)
        _row(args, "volume", label, name, train_s, predict_s, psnr=psnr, ssim=ssim)
        tiles.append(Tile(crop_2d(out, size=128), name, f"{psnr:.2f} dB / {ssim:.3f}"))
    save_panel(
        [[*tiles, Tile(crop_2d(clean, size=128), "clean (middle plane)")]],
        IMAGES / "bench_volume.png",
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
    outputs = candidates(noisy, _default_methods(), args.minutes, "ZYX", bm3d=False)
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
        _row(args, case, label, name, outputs[name][1], outputs[name][2], **readouts)
        subtitle = f"sigma {readouts['noise_sigma_output']:.3f}, r {readouts['residual_output_correlation']:.2f}"
        tiles.append(Tile(crop_2d(outputs[name][0], size=128), name, subtitle))
    save_panel([tiles], IMAGES / f"bench_{case}.png", limits_from=-1)


CASES = {
    "fmd": case_fmd,
    "correlated": case_correlated,
    "volume": case_volume,
    "confocal": lambda args: case_no_reference(args, "confocal"),
    "ct": lambda args: case_no_reference(args, "ct"),
}


# ------------------------------------------------------------------------------- report


def _newest_session(path: Path) -> list[dict]:
    newest = {}
    for row in read_records(path):  # the newest result of each (case, image, method)
        newest[(row["case"], row["image"], row["method"])] = row
    return list(newest.values())


def report(rows: list[dict], notes: str) -> str:
    """Markdown of the ``real-data`` section: one table and one panel per case."""
    parts = [
        "## Real and harder data (issue #7) — `benchmarks/real_data.py`",
        f"Machine: {machine_line()}.",
        notes.strip(),
    ]
    for case in CASES:
        chosen = [r for r in rows if r["case"] == case]
        if not chosen:
            continue
        minutes = max(r["minutes"] for r in chosen)
        sessions = sorted({r["session"] for r in chosen})
        if "psnr" in chosen[0]:
            images = list(dict.fromkeys(r["image"] for r in chosen))
            methods = list(dict.fromkeys(r["method"] for r in chosen))
            table_rows = []
            for method in methods:
                cells = []
                for image in images:
                    match = [r for r in chosen if (r["method"], r["image"]) == (method, image)]
                    cells.append(
                        f"{match[-1]['psnr']:.2f} / {match[-1]['ssim']:.3f}" if match else ""
                    )
                seconds = [
                    r["train_seconds"] + r["predict_seconds"]
                    for r in chosen
                    if r["method"] == method
                ]
                table_rows.append([method, *cells, f"{np.mean(seconds):.1f}"])
            table = markdown_table(["method", *images, "time (s)"], table_rows)
            unit = "PSNR (dB) / SSIM" + (
                " after the linear fit to the reference" if case == "fmd" else ""
            )
        else:
            header = [
                "method",
                "noise sigma (input → output)",
                "residual std / input noise",
                "corr(residual, output)",
                "EPI vs noisy",
                "time (s)",
            ]
            table_rows = [
                [
                    r["method"],
                    f"{r['noise_sigma_noisy']:.4f} → {r['noise_sigma_output']:.4f}",
                    f"{r['residual_std_ratio']:.2f}",
                    f"{r['residual_output_correlation']:.3f}",
                    f"{r['epi_vs_noisy']:.3f}",
                    f"{r['train_seconds'] + r['predict_seconds']:.1f}",
                ]
                for r in chosen
            ]
            table = markdown_table(header, table_rows)
            unit = f"{chosen[0]['image']}, no clean version: no-reference readouts (intensities scaled to the 0.1 to 99.9th percentiles)"
        parts += [
            f"### {case}",
            f"{unit}; deep methods trained {minutes:g} min each; session {', '.join(sessions)}.",
            table,
            f"![{case}](images/bench_{case}.png)",
        ]
    return "\n\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES)
    )
    parser.add_argument("--minutes", type=float, default=1.0, help="training budget per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small crops, 0.1 min: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--session", default=time.strftime("%Y-%m-%d %H:%M"))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--notes", type=Path, default=Path(__file__).parent / "notes" / "real_data.md"
    )
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    if args.quick:
        args.minutes = 0.1
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; choose from {', '.join(CASES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.write_docs:
        write_section("real-data", report(_newest_session(args.out), args.notes.read_text()))
        return
    print(f"machine: {machine_line()}")
    for case in args.cases:
        print(f"case {case}", flush=True)
        CASES[case](args)


if __name__ == "__main__":
    main()
