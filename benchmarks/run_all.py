"""Regenerate docs/benchmarks.md: run every benchmark at its recorded protocol, then write the page.

Each script appends its results under ``benchmarks/results/`` (kept in git) and owns one
marked section of ``docs/benchmarks.md``; this runner calls them in turn with the protocol
the page reports, then asks each to rebuild its section (``--write-docs``) from its results
and notes (``benchmarks/notes/*.md``).

The recorded protocol takes about three hours on 2 CPU cores (quality: ~100 min,
real data: ~25 min, CPU budget: ~25 min, inference: ~8 min, metrics: ~2 min). Run it on
an otherwise idle machine: the deep methods get wall-clock budgets.

Examples
--------
python benchmarks/run_all.py                      # everything, then the page
python benchmarks/run_all.py --only real-data     # one section
python benchmarks/run_all.py --docs-only          # rebuild the page from stored results
                                                  # (sections without any are left as they are)
python benchmarks/run_all.py --dry-run            # print the commands
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROTOCOL: dict[str, list[list[str]]] = {
    "metrics-speed": [["metrics_speed.py"]],
    "inference": [["inference.py"]],
    "quality": [
        [
            "quality.py",
            "--images",
            "all",
            "--methods",
            "neighbor2neighbor",
            "--budgets",
            "1,3",
            "--tta",
        ],
        [
            "quality.py",
            "--images",
            "01,05,08",
            "--methods",
            "noise2same,n2v2,n2v,noise2self",
            "--budgets",
            "1",
            "--no-classical",
            "--tta",
        ],
    ],
    "quality-careamics": [
        [
            "quality.py",
            "--images",
            "01,05,08",
            "--methods",
            "",
            "--budgets",
            "1,3",
            "--no-classical",
            "--careamics",
        ],
    ],
    "quality-10min": [
        [
            "quality.py",
            "--images",
            "05,09",
            "--methods",
            "neighbor2neighbor",
            "--budgets",
            "10",
            "--tta",
            "--no-classical",
        ],
    ],
    "cpu-budget": [
        [
            "cpu_budget.py",
            "--images",
            "05",
            "--gmac",
            "1000",
            "--threads",
            "1",
            "--recipes",
            "n2s-old,n2s-plain,n2v2-old,n2v2-10pct,n2n,n2n-p128b4,n2n-lr3e3,n2n-b16",
        ],
        [
            "cpu_budget.py",
            "--images",
            "05",
            "--gmac",
            "3000",
            "--threads",
            "1",
            "--recipes",
            "n2n-b16-lr3e3,n2n-b24-lr3e3,n2n-b32-lr3e3",
            "--no-classical",
        ],
        ["cpu_budget.py", "--volume", "--budgets", "0.9,2", "--recipes", "n2n-3d,n2n-2d-slices"],
    ],
    "real-data": [["real_data.py", "--minutes", "1"]],
    # Issue 13: every method at equal CPU-minutes, as calibrated step budgets (load-proof).
    "quality-cpu-minutes": [
        [
            "quality.py",
            "--images",
            "all",
            "--methods",
            "neighbor2neighbor,noise2same,n2v2,n2v,noise2self",
            "--cpu-minutes",
            "1,3",
            "--tta",
            "--no-classical",
        ],
    ],
    "real-data-cpu-minutes": [
        [
            "real_data.py",
            "--cases",
            "fmd",
            "--methods",
            "neighbor2neighbor,noise2same,n2v2,n2v,noise2self",
            "--cpu-minutes",
            "1,3",
            "--baselines",
            "",
        ],
    ],
}
"""Benchmark runs behind each section of the page, in the order they run."""

DOCS: dict[str, list[str]] = {
    "metrics-speed": ["metrics_speed.py", "--write-docs"],
    "inference": ["inference.py", "--write-docs"],
    "quality": ["quality.py", "--write-docs", "--notes", "notes/quality.md"],
    "quality-careamics": ["quality.py", "--write-docs", "--notes", "notes/quality.md"],
    "quality-10min": ["quality.py", "--write-docs", "--notes", "notes/quality.md"],
    "cpu-budget": ["cpu_budget.py", "--write-docs", "--notes", "notes/cpu_budget.md"],
    "real-data": ["real_data.py", "--write-docs", "--notes", "notes/real_data.md"],
    "quality-cpu-minutes": ["quality.py", "--write-docs", "--notes", "notes/quality.md"],
    "real-data-cpu-minutes": ["real_data.py", "--write-docs", "--notes", "notes/real_data.md"],
}
"""The command that rebuilds each section from stored results."""


def _default_out(script: str) -> str:
    """The results file ``script`` writes and its ``--write-docs`` reads (its ``DEFAULT_OUT``),
    relative to ``benchmarks/``; importing a script loads no torch."""
    import importlib

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module(Path(script).stem)
    return str(Path(module.DEFAULT_OUT).relative_to(HERE))


STORED: dict[str, str] = {section: _default_out(command[0]) for section, command in DOCS.items()}
"""Where each section's results are stored, e.g. ``'results/quality.jsonl'``."""


def stored_sections(sections: list[str], here: Path = HERE) -> tuple[list[str], list[str]]:
    """``sections`` split into those with stored results and those without (left as they
    are by ``--docs-only``: a results file starts empty and fills on the section's next run)."""
    kept, missing = [], []
    for section in sections:
        path = here / STORED[section]
        (kept if path.exists() and path.stat().st_size > 0 else missing).append(section)
    return kept, missing


def _run(arguments: list[str], dry_run: bool) -> None:
    command = [
        sys.executable,
        *[str(HERE / a) if a.endswith((".py", ".md")) else a for a in arguments],
    ]
    print("$", shlex.join(command), flush=True)
    if not dry_run:
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=HERE)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PROTOCOL), help="comma-separated sections")
    parser.add_argument("--docs-only", action="store_true", help="only rebuild the page")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(PROTOCOL)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(PROTOCOL)}")
    if not args.docs_only:
        for section in sections:
            for arguments in PROTOCOL[section]:
                _run(arguments, args.dry_run)
    else:
        sections, missing = stored_sections(sections)
        for section in missing:
            print(f"{section}: no stored results in {STORED[section]}; left as it is")
    rebuilds = dict.fromkeys(tuple(DOCS[section]) for section in sections)  # each once
    for arguments in rebuilds:
        _run(list(arguments), args.dry_run)


if __name__ == "__main__":
    main()
