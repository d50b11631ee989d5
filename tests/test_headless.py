"""A plain install is headless: no napari or Qt in the main dependencies or outside _napari.

The full check (a fresh virtual environment without extras that trains and predicts) is
``scripts/headless-check.sh``, run by ``.ci/run``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
GUI_PACKAGES = {"napari", "magicgui", "npe2", "qtpy", "superqt", "psygnal", "pyqt6", "pyside6"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def test_gui_packages_are_an_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = {_name(r) for r in project["dependencies"]}
    assert not main & GUI_PACKAGES, main & GUI_PACKAGES
    extras = project["optional-dependencies"]
    assert {"napari", "magicgui", "npe2", "qtpy", "superqt", "psygnal"} <= {
        _name(r) for r in extras["napari"]
    }
    for extra in ("gui", "testing", "all"):
        assert any("napari" in r for r in extras[extra]), extra


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0].lower() for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0].lower())
    return roots


def test_only_the_napari_package_imports_gui_packages():
    source = ROOT / "src" / "selfdenoise"
    offenders = {
        str(path.relative_to(source)): sorted(_imported_roots(path) & GUI_PACKAGES)
        for path in source.rglob("*.py")
        if "_napari" not in path.parts
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_headless_check_runs_in_ci():
    assert "scripts/headless-check.sh" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "headless-check.sh").read_text()
    assert "import $module" in script and 'selfdenoise" train' in script
