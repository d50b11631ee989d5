"""The ``real-data`` section of docs/benchmarks.md, built from ``real_data.py``'s results file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _report import machines_line, markdown_table, records_for_docs

NO_REFERENCE_HEADER = [
    "method",
    "noise sigma (input → output)",
    "residual std / input noise",
    "corr(residual, output)",
    "EPI vs noisy",
    "time (s)",
]


def newest_results(path: Path) -> list[dict]:
    """The newest result of each (case, image, method) in a results file (exits when it holds
    none: ``_report.records_for_docs``)."""
    newest = {}
    for row in records_for_docs(path):
        newest[(row["case"], row["image"], row["method"])] = row
    return list(newest.values())


def _method_rank(method: str) -> tuple:
    """Table order: noisy, NL-means, BM3D, BM3D + GAT (estimated before best), deep methods."""
    rank = 3
    for k, prefix in enumerate(("noisy", "NL-means", "BM3D")):
        if method.startswith(prefix):
            rank = k
    return (rank, "GAT" in method, "best" in method)


def psnr_table(rows: list[dict]) -> str:
    """PSNR / SSIM per image (columns) of every method (rows), and the mean time."""
    images = list(dict.fromkeys(r["image"] for r in rows))
    methods = sorted(dict.fromkeys(r["method"] for r in rows), key=_method_rank)
    table_rows = []
    for method in methods:
        cells = []
        for image in images:
            match = [r for r in rows if (r["method"], r["image"]) == (method, image)]
            cells.append(f"{match[-1]['psnr']:.2f} / {match[-1]['ssim']:.3f}" if match else "")
        seconds = [r["train_seconds"] + r["predict_seconds"] for r in rows if r["method"] == method]
        table_rows.append([method, *cells, f"{np.mean(seconds):.1f}"])
    return markdown_table(["method", *images, "time (s)"], table_rows)


def no_reference_table(rows: list[dict]) -> str:
    """The no-reference readouts of every method."""
    table_rows = [
        [
            r["method"],
            f"{r['noise_sigma_noisy']:.4f} → {r['noise_sigma_output']:.4f}",
            f"{r['residual_std_ratio']:.2f}",
            f"{r['residual_output_correlation']:.3f}",
            f"{r['epi_vs_noisy']:.3f}",
            f"{r['train_seconds'] + r['predict_seconds']:.1f}",
        ]
        for r in rows
    ]
    return markdown_table(NO_REFERENCE_HEADER, table_rows)


def strengths_line(rows: list[dict]) -> str:
    """The strength each per-image sweep chose, as a factor of the estimated sigma ('' if none)."""
    chosen = [r for r in rows if "best" in r["method"] and "factor" in r]
    if not chosen:
        return ""
    parts = [f"{r['method'].split(' (')[0]} {r['image']} {r['factor']:.2f}" for r in chosen]
    return (
        "Per-image sweeps (best PSNR against the reference) chose: h / sigma-hat for NL-means, "
        "sigma_psd / sigma-hat for BM3D, sigma_psd for BM3D + GAT (unit noise after the "
        "transform): " + "; ".join(parts) + "."
    )


def _budget_line(rows: list[dict]) -> str:
    """How the deep rows of a case were trained."""
    parts = []
    legacy = [r for r in rows if "cpu_minutes" not in r and r["train_seconds"] > 0]
    if legacy:
        parts.append(f"deep methods trained {max(r['minutes'] for r in legacy):g} min each")
    if any("cpu_minutes" in r for r in rows):
        parts.append(
            "rows marked 'min (steps eq.)' trained the steps the method makes in that many "
            "CPU-minutes on a quiet machine (`benchmarks/calibration.json`)"
        )
    return "; ".join(parts)


def report(rows: list[dict], notes: str, cases: list[str]) -> str:
    """Markdown of the ``real-data`` section: one table and one panel per case."""
    parts = [
        "## Real and harder data (issue #7) — `benchmarks/real_data.py`",
        machines_line([r.get("machine") for r in rows]),
        notes.strip(),
    ]
    for case in cases:
        chosen = [r for r in rows if r["case"] == case]
        if not chosen:
            continue
        sessions = sorted({r["session"] for r in chosen})
        if "psnr" in chosen[0]:
            table = psnr_table(chosen)
            unit = "PSNR (dB) / SSIM" + (
                " after the linear fit to the reference" if case == "fmd" else ""
            )
        else:
            table = no_reference_table(chosen)
            unit = (
                f"{chosen[0]['image']}, no clean version: no-reference readouts (intensities "
                "scaled to the 0.1 to 99.9th percentiles)"
            )
        budget = _budget_line(chosen)
        parts += [
            f"### {case}",
            f"{unit}; {budget + '; ' if budget else ''}session {', '.join(sessions)}.",
            table,
            *([strengths_line(chosen)] if strengths_line(chosen) else []),
            f"![{case}](images/bench_{case}.png)",
        ]
    return "\n\n".join(parts)
