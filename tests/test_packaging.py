"""The napari manifest is found in editable installs and shipped inside wheels."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates_through_the_installed_entry_point():
    npe2 = shutil.which("npe2", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [npe2, "validate", "napari-selfdenoise"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr).lower()


def test_package_manifest_is_the_root_manifest():
    linked = ROOT / "src" / "selfdenoise" / "napari.yaml"
    assert linked.read_text() == (ROOT / "napari.yaml").read_text()


@pytest.mark.slow
def test_wheel_ships_a_valid_manifest_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "Could not find a version" in result.stderr:
        pytest.skip("no package index to fetch the build backend from")
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("napari_selfdenoise-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        manifest = archive.read("selfdenoise/napari.yaml").decode()
        entry_points = archive.read(
            next(n for n in archive.namelist() if n.endswith("entry_points.txt"))
        ).decode()
    assert manifest == (ROOT / "napari.yaml").read_text()
    assert "selfdenoise:napari.yaml" in entry_points
    extracted = tmp_path / "napari.yaml"
    extracted.write_text(manifest)
    npe2 = shutil.which("npe2", path=str(Path(sys.executable).parent))
    check = subprocess.run([npe2, "validate", str(extracted)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
