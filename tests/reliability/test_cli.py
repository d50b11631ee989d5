"""Trust matrix, CLI rows of issue 11: one parametrised case per defect.

Each case runs ``selfdenoise`` in-process and asserts: the exit status (2 for a user error),
exactly one ``error: ...`` line on stderr and no traceback (an exception escaping ``main``
fails the case), that no input file changed (hash before and after), and, where the error
must come before any work, that no training or prediction started.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile

from _synthetic import synthetic_2d
from selfdenoise.cli import main

FAST = ["--steps-per-epoch", "2", "--patch", "32,32", "--batch", "2", "--device", "cpu"]


def _digest(path: Path) -> str:
    """Hash of a file, or of every file in a folder (a zarr store)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for item in files:
        digest.update(str(item.relative_to(path) if path.is_dir() else item.name).encode())
        digest.update(item.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Train on one thread: on a busy 2-core machine more threads only spin."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A noisy image as .tif, .npy and .zarr, a zarr group, and a model trained for 4 steps."""
    from selfdenoise.io import write_image

    folder = tmp_path_factory.mktemp("inputs")
    noisy, _ = synthetic_2d((64, 64))
    paths = {
        "tif": write_image(folder / "in.tif", noisy, axes="YX", scale=(0.5, 0.5)),
        "npy": write_image(folder / "in.npy", noisy),
        "zarr": write_image(folder / "in.zarr", noisy, axes="YX"),
        "model": folder / "model.safetensors",
    }
    import zarr

    group = zarr.open_group(str(folder / "group.zarr"), mode="w")
    group.create_array("raw", shape=noisy.shape, dtype=noisy.dtype)[:] = noisy
    paths["group"] = folder / "group.zarr"
    with tifffile.TiffWriter(folder / "two.tif") as tif:
        tif.write(noisy)
        tif.write(np.zeros((3, 16, 16), np.float32), photometric="minisblack")
    paths["two"] = folder / "two.tif"
    argv = ["train", str(paths["npy"]), "--axes", "YX", "--out", str(paths["model"])]
    assert main([*argv, "--steps", "4", *FAST]) == 0
    return paths


@dataclass
class Case:
    """One row: arguments built from the fixture's files and a fresh folder."""

    build: Callable[[dict[str, Path], Path], list[str]]
    message: str
    code: int = 2
    before_work: bool = True
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    kept: Callable[[dict[str, Path], Path], list[Path]] = field(default=lambda f, t: [])


def _predict(model_key="model", source="tif", out="den.tif", *extra):
    def build(f, tmp):
        target = f[out] if out in f else tmp / out
        return ["predict", str(f[model_key]), str(f[source]), "--out", str(target), *extra]

    return build


def _train(source="npy", out="m.safetensors", *extra, steps="4"):
    def build(f, tmp):
        target = f[out] if out in f else tmp / out
        return [
            "train",
            str(f[source]),
            "--axes",
            "YX",
            "--out",
            str(target),
            "--steps",
            steps,
            *extra,
            *FAST,
        ]

    return build


def _existing(name: str, content: Callable[[Path], None]):
    """Keep a file made before the run (an earlier output) and check it is not damaged."""

    def kept(f, tmp):
        path = tmp / name
        if not path.exists():
            content(path)
        return [path]

    return kept


def _old_output(path: Path) -> None:
    from selfdenoise.io import write_image

    write_image(path, np.full((64, 64), 7, np.float32))


def _disk_full(*args, **kwargs):
    target = next(a for a in args if isinstance(a, str | os.PathLike))
    Path(target).write_bytes(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


def _full_tiff(monkeypatch):
    monkeypatch.setattr(tifffile, "imwrite", _disk_full)


def _full_npy(monkeypatch):
    monkeypatch.setattr(np, "save", _disk_full)


def _full_zarr(monkeypatch):
    import zarr

    def fail(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarr.Array, "__setitem__", fail)


def _safetensors_error(monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    def fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)


def _torch_write_error(monkeypatch):
    import torch

    def fail(obj, target, *args, **kwargs):
        Path(target).write_bytes(b"partial")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", fail)


def _folder(name):
    def build(f, tmp):
        (tmp / name).mkdir(exist_ok=True)
        return tmp / name

    return build


CASES = {
    # row 2: never write over an input
    "row02-predict-out-is-input-tif": Case(_predict(out="tif"), "would overwrite the input"),
    "row02-predict-out-is-input-npy": Case(
        _predict(source="npy", out="npy"), "would overwrite the input"
    ),
    "row02-predict-zarr-onto-itself": Case(
        _predict(source="zarr", out="zarr"), "would overwrite the input"
    ),
    "row02-predict-out-inside-input-store": Case(
        lambda f, t: [
            "predict",
            str(f["model"]),
            str(f["zarr"]),
            "--out",
            str(f["zarr"] / "d.tif"),
        ],
        "would overwrite the input",
    ),
    "row02-predict-input-inside-out-store": Case(
        lambda f, t: [
            "predict",
            str(f["model"]),
            str(f["group"] / "raw"),
            "--out",
            str(f["group"]),
        ],
        "would overwrite the input",
    ),
    "row02-predict-out-is-a-link-to-input": Case(
        lambda f, t: [
            "predict",
            str(f["model"]),
            str(f["tif"]),
            "--out",
            str(_link(t / "link.tif", f["tif"])),
        ],
        "would overwrite the input",
    ),
    "row02-train-out-is-input": Case(_train(source="tif", out="tif"), "would overwrite the input"),
    # row 5: outputs checked before training; save errors are one line
    "row05-train-out-folder-missing": Case(_train(out="missing/m.safetensors"), "does not exist"),
    "row05-train-out-is-a-folder": Case(
        lambda f, t: _train(out=str(_folder("m.safetensors")(f, t)))(f, t), "is a folder"
    ),
    "row05-model-save-error": Case(
        _train(out="m.safetensors"),
        "No space left on device",
        before_work=False,
        patch=_safetensors_error,
        kept=_existing("m.safetensors", lambda p: p.write_bytes(b"old model")),
    ),
    # row 9: atomic writes, write errors as one line, the old file intact
    "row09-tif-disk-full": Case(
        _predict(out="den.tif"),
        "No space left on device",
        before_work=False,
        patch=_full_tiff,
        kept=_existing("den.tif", _old_output),
    ),
    "row09-npy-disk-full": Case(
        _predict(out="den.npy"),
        "No space left on device",
        before_work=False,
        patch=_full_npy,
        kept=_existing("den.npy", _old_output),
    ),
    "row09-zarr-disk-full": Case(
        _predict(out="den.zarr"),
        "No space left on device",
        before_work=False,
        patch=_full_zarr,
        kept=_existing("den.zarr", _old_output),
    ),
    # row 12: CLI tracebacks
    "row12-dtype-bogus": Case(_predict("model", "tif", "den.tif", "--dtype", "bogus"), "--dtype"),
    "row12-lambda-inv-abc": Case(
        _train("npy", "m.safetensors", "--method", "noise2same", "--lambda-inv", "abc"),
        "--lambda-inv",
    ),
    "row12-lr-diverges": Case(
        _train("npy", "m.safetensors", "--lr", "1e6", "--method", "n2v", steps="40"),
        "diverged",
        before_work=False,
    ),
    "row12-compare-csv-unwritable": Case(
        lambda f, t: ["compare", str(f["npy"]), "--csv", str(t / "missing" / "table.csv")],
        "does not exist",
    ),
    "row12-compare-csv-is-input": Case(
        lambda f, t: ["compare", str(f["npy"]), "--noisy", str(f["tif"]), "--csv", str(f["tif"])],
        "would overwrite the input",
    ),
    "row12-checkpoint-dir-is-a-file": Case(
        lambda f, t: (
            [*_train()(f, t), "--checkpoint-dir", str(_file(t / "ck")), "--checkpoint-every", "2"]
        ),
        "is a file, not a folder",
    ),
    # row 13: silent surprises
    "row13-checkpoint-every-without-dir": Case(
        _train("npy", "m.safetensors", "--checkpoint-every", "2"), "--checkpoint-dir"
    ),
    "row13-series-out-of-range": Case(
        _predict("model", "two", "den.tif", "--series", "5"), "holds 2 image series"
    ),
}


def _link(link: Path, target: Path) -> Path:
    if not link.is_symlink():
        link.symlink_to(target)
    return link


def _file(path: Path) -> Path:
    path.write_bytes(b"not a folder")
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Make any start of training or prediction fail the case."""
    from selfdenoise.api import Denoiser

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the error was found")

    monkeypatch.setattr(Denoiser, "fit_iter", refuse)
    monkeypatch.setattr(Denoiser, "predict", refuse)


def _run(argv: list[str], capsys) -> tuple[int | str, str]:
    capsys.readouterr()
    try:
        code: int | str = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    except BaseException as exc:  # an escaping exception is a traceback for a user
        code = f"raised {type(exc).__name__}: {exc}"
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_cli_row(case: Case, files, tmp_path, capsys, monkeypatch, request):
    if case.before_work:
        request.getfixturevalue("no_work")
    kept = case.kept(files, tmp_path)
    argv = case.build(files, tmp_path)
    watched = [p for p in (*files.values(), *kept) if p.exists()]
    before = {p: _digest(p) for p in watched}
    if case.patch is not None:
        case.patch(monkeypatch)
    code, err = _run(argv, capsys)
    monkeypatch.undo()
    assert code == case.code, (code, err)
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and case.message in errors[0], err
    assert "Traceback" not in err
    assert {p: _digest(p) for p in watched} == before
    leftovers = [p.name for p in tmp_path.rglob("*") if ".partial" in p.name]
    assert leftovers == []


def test_row09_checkpoint_write_error_warns_and_training_goes_on(
    files, tmp_path, capsys, monkeypatch
):
    """A checkpoint that cannot be written is one warning line; the run finishes and saves."""
    out = tmp_path / "m.safetensors"
    argv = [*_train()(files, tmp_path), "--checkpoint-dir", str(tmp_path / "ck")]
    argv = [a if a != str(tmp_path / "m.safetensors") else str(out) for a in argv]
    before = _digest(files["npy"])
    _torch_write_error(monkeypatch)
    code, err = _run([*argv, "--checkpoint-every", "2"], capsys)
    monkeypatch.undo()
    assert code == 0, err
    warnings_ = [line for line in err.splitlines() if "checkpoint" in line]
    assert len(warnings_) == 1 and warnings_[0].startswith("warning: "), err
    assert "Traceback" not in err and out.exists()
    assert _digest(files["npy"]) == before


def test_row13_multi_series_tiff_says_which_series(files, tmp_path, capsys):
    out = tmp_path / "den.tif"
    code, err = _run(["predict", str(files["model"]), str(files["two"]), "--out", str(out)], capsys)
    assert code == 0, err
    assert "warning: 'two.tif' holds 2 image series; reading series 0" in err
    assert "--series" in err
    code, err = _run(
        ["predict", str(files["model"]), str(files["two"]), "--series", "0", "--out", str(out)],
        capsys,
    )
    assert (code, err) == (0, "")


def test_row02_zarr_output_replaced_only_when_complete(files, tmp_path, capsys):
    """The zarr output is a new store: an earlier output is replaced as a whole."""
    from selfdenoise.io import read_image

    out = tmp_path / "den.zarr"
    _old_output(out)
    argv = ["predict", str(files["model"]), str(files["zarr"]), "--out", str(out)]
    code, err = _run(argv, capsys)
    assert code == 0, err
    result = read_image(out)
    assert result.axes == "YX" and not np.all(np.asarray(result.data) == 7)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_row04_ctrl_c_saves_the_weights_and_says_where(files, tmp_path):
    """SIGINT after a few progress lines: exit 130, the model saved and loadable."""
    out = tmp_path / "interrupted.safetensors"
    argv = ["train", str(files["npy"]), "--axes", "YX", "--out", str(out), "--steps", "100000"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "selfdenoise.cli", *argv, *FAST],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A suite started in the background ('pytest &') ignores SIGINT, and a child inherits
        # that; a user's Ctrl-C reaches a command with the default disposition.
        preexec_fn=_default_sigint,
    )
    try:
        progress: list[int] = []
        deadline = time.monotonic() + 60
        while len(progress) < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("step "):
                progress.append(int(line.split()[1].split("/")[0]))
        assert len(progress) == 3, "no progress lines"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)  # generous: shared CI machines
    finally:
        process.kill()
    assert process.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: interrupted after ")
    assert lines[0].endswith(f"steps; saved the best weights so far to {out}")
    steps = int(lines[0].split("after ")[1].split(" ")[0])
    assert steps >= progress[-1]

    from selfdenoise.api import Denoiser

    model = Denoiser.load(out)
    assert model.is_trained
    assert model.predict(np.zeros((32, 32), np.float32)).shape == (32, 32)
