"""The documentation cannot rot: strict MkDocs build, and the pages' examples run as written.

- ``test_docs_build_strictly``: ``mkdocs build --strict`` (warnings are errors: broken links,
  anchors and cross-references, nav entries without a page, docstrings mkdocstrings cannot
  parse) into a temporary folder; also checks that the API reference was rendered.
- ``test_page_examples_run``: every fenced ```python and ```bash block of the executed pages
  runs, in document order, in one fresh temporary folder per page, so later blocks can use the
  files earlier ones wrote. A page is run in parts, one test per part: the blocks under each
  of its ``## `` sections (:func:`page_parts`), so that no test runs a whole long page; the
  parts of a page share the folder, and a part run on its own (``-k``) first runs the parts
  before it. Python blocks run in a fresh namespace each (they must be self-contained, as a
  reader copies them), in one interpreter per part so torch is imported once per part;
  tracebacks point at the Markdown line. Bash blocks run with ``bash -euo pipefail`` and the
  virtual environment's ``bin`` first on ``PATH``. A part may take :data:`BLOCK_BUDGET`
  seconds per block (at most :data:`PART_TIMEOUT`).
- ``test_napari_examples_run``: the blocks that import napari, in their own interpreter,
  where a display (or Xvfb, which pytest-xvfb starts) is available; ``napari.run()`` is
  replaced by closing the viewers, so the session ends instead of waiting for the user.

A block preceded by ``<!-- not-run: REASON -->`` is not executed (e.g. it needs several GPUs);
prefer a variant that runs on a CPU. Budgets in the examples are tiny so all of this takes
well under two minutes on two CPU cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXECUTED_PAGES = ("scripting.md", "methods.md", "metrics.md")
"""Pages whose code blocks are run (the install pages' commands would install things)."""

RUN_LANGUAGES = ("python", "bash")
OTHER_LANGUAGES = ("text",)
BLOCK_BUDGET = 60
"""Seconds one example block may take on a loaded two-core machine (most take a few)."""
PART_TIMEOUT = 240
"""Limit for one part of a page (below pytest's 300 s per test)."""

_FENCE = re.compile(
    r"^(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block of a Markdown page."""

    page: str
    line: int  # 1-based line of the first line of code
    language: str
    code: str
    not_run: str | None  # reason, when marked <!-- not-run: reason -->

    @property
    def needs_napari(self) -> bool:
        return (
            self.language == "python"
            and re.search(r"^\s*import napari\b", self.code, re.M) is not None
        )

    @property
    def label(self) -> str:
        return f"{self.page}:{self.line}"


def extract_blocks(text: str, page: str) -> list[Block]:
    """Fenced code blocks at the start of a line, with the not-run marker just before them."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _NOT_RUN.search(before)
        language = match.group("info").strip().split(" ")[0].lower()
        line = text.count("\n", 0, match.start("code")) + 1
        blocks.append(
            Block(
                page,
                line,
                language,
                match.group("code"),
                marker.group("reason") if marker else None,
            )
        )
    return blocks


def page_blocks(name: str) -> list[Block]:
    return extract_blocks((DOCS / name).read_text(encoding="utf-8"), f"docs/{name}")


def runnable(block: Block) -> bool:
    """Run by ``test_page_examples_run`` (napari blocks have their own test)."""
    return block.language in RUN_LANGUAGES and block.not_run is None and not block.needs_napari


def split_parts(text: str, blocks: list[Block]) -> list[tuple[str, list[Block]]]:
    """``(section slug, runnable blocks)`` per ``## `` section of a page that has any, in
    document order (blocks before the first such heading form the part ``'start'``)."""
    headings = [(0, "start")]
    for match in re.finditer(r"^## +(.+?)\s*$", text, re.M):
        slug = re.sub(r"[^a-z0-9]+", "-", match.group(1).lower()).strip("-")
        headings.append((text.count("\n", 0, match.start()) + 1, slug))
    parts: dict[str, list[Block]] = {}
    for block in blocks:
        if runnable(block):
            slug = [name for line, name in headings if line < block.line][-1]
            parts.setdefault(slug, []).append(block)
    return list(parts.items())


def page_parts(page: str) -> list[tuple[str, list[Block]]]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return split_parts(text, extract_blocks(text, f"docs/{page}"))


PARTS = [
    (page, index, slug)
    for page in EXECUTED_PAGES
    for index, (slug, _) in enumerate(page_parts(page))
]
"""One ``test_page_examples_run`` case per part of each executed page."""


# The interpreter that runs one page's blocks; argv[1] is a JSON list of blocks.
DRIVER = r"""
import json, os, subprocess, sys, time

blocks = json.load(open(sys.argv[1], encoding="utf-8"))
root = sys.argv[2]
if any(b["napari"] for b in blocks):
    import napari

    def _run_headless(*args, **kwargs):
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        napari.Viewer.close_all()

    napari.run = _run_headless

for block in blocks:
    label = f"{block['page']}:{block['line']} ({block['language']})"
    print(f"===== {label}", flush=True)
    started = time.perf_counter()
    if block["language"] == "python":
        source = "\n" * (block["line"] - 1) + block["code"]
        code = compile(source, os.path.join(root, block["page"]), "exec")
        exec(code, {"__name__": "__main__"})
    else:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block["code"]])
        if result.returncode != 0:
            print(f"FAILED: {label} exited with status {result.returncode}", flush=True)
            sys.exit(1)
    print(f"===== {label} ok in {time.perf_counter() - started:.1f} s", flush=True)
"""


def run_blocks(blocks: list[Block], folder: Path, timeout: float | None = None) -> str:
    """Run blocks in ``folder`` with the driver; fail the test with the output's tail if one fails."""
    if timeout is None:
        timeout = min(BLOCK_BUDGET * len(blocks), PART_TIMEOUT)
    spec = folder / "_blocks.json"
    spec.write_text(json.dumps([{**asdict(b), "napari": b.needs_napari} for b in blocks]))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    # One torch thread per process: on a small shared machine, torch's default of one thread
    # per core spins against the other processes and trains several times slower.
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        result = subprocess.run(
            [sys.executable, "-c", DRIVER, str(spec), str(ROOT)],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        tail = exc.stdout or ""
        tail = (tail.decode(errors="replace") if isinstance(tail, bytes) else tail)[-4000:]
        pytest.fail(f"examples took longer than {timeout} s; last output:\n{tail}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"a documented example failed:\n{output[-8000:]}"
    return output


# --------------------------------------------------------------------------- the build


def test_docs_build_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[testing]'")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--clean",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output[-6000:]}"
    assert "WARNING" not in output, output[-6000:]
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in (
        "selfdenoise.api.Denoiser",
        "fit_iter",
        "make_config",
        "compare",
        "read_image",
        "predict_dask",
        "Layout",
    ):
        assert name in api, f"{name} is missing from the rendered API reference"


# --------------------------------------------------------------------------- the examples


def test_extract_blocks_finds_fences_markers_and_lines():
    text = (
        "# Title\n\n```python\nprint(1)\n```\n\n<!-- not-run: needs 4 GPUs -->\n"
        "```bash\ntorchrun --nproc_per_node 4 x\n```\n\n````text\n```python\nnested\n```\n````\n"
    )
    blocks = extract_blocks(text, "page.md")
    assert [(b.language, b.line, b.not_run) for b in blocks] == [
        ("python", 4, None),
        ("bash", 9, "needs 4 GPUs"),
        ("text", 13, None),
    ]
    assert blocks[0].code == "print(1)\n"


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_page_blocks_are_runnable_or_marked(page):
    blocks = page_blocks(page)
    assert blocks, f"no code blocks found in {page}"
    for block in blocks:
        assert block.language in RUN_LANGUAGES + OTHER_LANGUAGES, (
            f"{block.label}: fence language {block.language!r}; use python or bash (run by the "
            "tests) or text"
        )
        if block.not_run is not None:
            assert block.not_run, f"{block.label}: give a reason in <!-- not-run: REASON -->"
            assert block.language in RUN_LANGUAGES, (
                f"{block.label}: only code blocks can be not-run"
            )
    text = (DOCS / page).read_text(encoding="utf-8")
    markers = len(re.findall(r"<!--\s*not-run", text))
    assert markers == sum(b.not_run is not None for b in blocks), (
        f"{page}: a not-run marker is not directly before a fenced block"
    )


def test_scripting_page_covers_every_interface():
    blocks = [b for b in page_blocks("scripting.md") if b.not_run is None]
    code = "\n".join(b.code for b in blocks)
    for needle in (
        "Denoiser(",
        ".fit(",
        "fit_iter(",
        ".stop()",
        ".predict(",
        ".save(",
        "Denoiser.load(",
        "compare(",
        "import napari",
        "selfdenoise train",
        "selfdenoise predict",
        "selfdenoise compare",
        "predict_dask(",
        "open_zarr_output(",
        "torchrun --standalone --nproc_per_node 2",
    ):
        assert needle in code, f"no executed example on the scripting page uses {needle!r}"


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory):
    """Per page: the shared folder and the indices of the parts that ran there."""
    runs: dict[str, tuple[Path, set[int]]] = {}

    def run_part(page: str, index: int) -> str:
        if page not in runs:
            runs[page] = (tmp_path_factory.mktemp(page.replace(".", "_")), set())
        folder, done = runs[page]
        parts = page_parts(page)
        for earlier in range(index):  # the files this part may need (when run alone)
            if earlier not in done:
                run_blocks(parts[earlier][1], folder)
                done.add(earlier)
        output = run_blocks(parts[index][1], folder)
        done.add(index)
        return output

    return run_part


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "index"),
    [(page, index) for page, index, _ in PARTS],
    ids=[f"{p}-{s}" for p, _, s in PARTS],
)
def test_page_examples_run(page, index, page_runs):
    blocks = page_parts(page)[index][1]
    if any(b.language == "bash" for b in blocks) and shutil.which("bash") is None:
        pytest.skip("bash is not installed; the shell examples need it")
    output = page_runs(page, index)
    assert output.count(" ok in ") == len(blocks), output[-4000:]


def test_pages_are_split_at_sections_without_losing_a_block():
    text = (
        "```python\nprint(0)\n```\n## First part\n```bash\necho 1\n```\n"
        "<!-- not-run: needs a GPU -->\n```bash\necho 2\n```\n## Text only\n```text\nx\n```\n"
        "## Last: part\n```python\nprint(3)\n```\n```python\nprint(4)\n```\n"
    )
    parts = split_parts(text, extract_blocks(text, "page.md"))
    assert [(slug, [b.code for b in blocks]) for slug, blocks in parts] == [
        ("start", ["print(0)\n"]),
        ("first-part", ["echo 1\n"]),
        ("last-part", ["print(3)\n", "print(4)\n"]),
    ]
    for page in EXECUTED_PAGES:
        blocks = [b for b in page_blocks(page) if runnable(b)]
        assert [b for _, part in page_parts(page) for b in part] == blocks, page


def _display_available() -> bool:
    if sys.platform != "linux":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@pytest.mark.slow
@pytest.mark.viewer
def test_napari_examples_run(tmp_path):
    blocks = [
        b
        for page in EXECUTED_PAGES
        for b in page_blocks(page)
        if b.needs_napari and b.not_run is None
    ]
    if not blocks:
        pytest.skip("no napari examples in the executed pages")
    pytest.importorskip("napari", reason="napari is not installed")
    pytest.importorskip("qtpy", reason="no Qt binding for napari")
    if not _display_available():
        pytest.skip("no display: napari needs an X server (install Xvfb; pytest-xvfb starts it)")
    output = run_blocks(blocks, tmp_path)
    assert output.count(" ok in ") == len(blocks), output[-4000:]
