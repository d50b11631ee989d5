"""The selfdenoise command: help, train/predict/compare round trip, one-line errors, torchrun."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from _synthetic import synthetic_2d
from selfdenoise.cli import main

TRAIN_FAST = [
    "--steps",
    "4",
    "--steps-per-epoch",
    "2",
    "--patch",
    "32,32",
    "--batch",
    "2",
    "--device",
    "cpu",
]


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "selfdenoise.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("command", ["train", "predict", "compare", "demo"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: selfdenoise " + command in capsys.readouterr().out


def test_train_predict_compare_round_trip(tmp_path, capsys):
    noisy, clean = synthetic_2d()
    np.save(tmp_path / "noisy.npy", noisy)
    np.save(tmp_path / "clean.npy", clean)
    model = tmp_path / "model.safetensors"
    assert (
        main(
            [
                "train",
                str(tmp_path / "noisy.npy"),
                "--axes",
                "YX",
                "--method",
                "n2v2",
                "--out",
                str(model),
                *TRAIN_FAST,
            ]
        )
        == 0
    )
    assert model.exists()
    for suffix in (".tif", ".npy", ".zarr"):
        out = tmp_path / f"denoised{suffix}"
        assert (
            main(
                [
                    "predict",
                    str(model),
                    str(tmp_path / "noisy.npy"),
                    "--out",
                    str(out),
                    "--tile",
                    "32,32",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert (
        main(
            [
                "compare",
                str(tmp_path / "denoised.tif"),
                str(tmp_path / "denoised.npy"),
                "--reference",
                str(tmp_path / "clean.npy"),
                "--noisy",
                str(tmp_path / "noisy.npy"),
                "--json",
            ]
        )
        == 0
    )
    table = json.loads(capsys.readouterr().out)
    rows = table["rows"] if isinstance(table, dict) else table
    assert len(rows) == 2
    assert rows[0]["psnr"] == pytest.approx(rows[1]["psnr"], abs=1e-3)


def _errors(tmp_path):
    noisy, _ = synthetic_2d()
    np.save(tmp_path / "ok.npy", noisy)
    broken = noisy.copy()
    broken[0, 0] = np.nan
    np.save(tmp_path / "nan.npy", broken)
    np.save(tmp_path / "tiny.npy", noisy[:5, :5])
    np.save(tmp_path / "empty.npy", np.zeros((0, 10)))
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    out = str(tmp_path / "m.safetensors")
    return [
        (["train", str(tmp_path / "ok.npy"), "--axes", "ZYX", "--out", out], "dimensions"),
        (["train", str(tmp_path / "nan.npy"), "--axes", "YX", "--out", out], "NaN"),
        (["train", str(tmp_path / "tiny.npy"), "--axes", "YX", "--out", out], "too small"),
        (["train", str(tmp_path / "empty.npy"), "--axes", "YX", "--out", out], "empty"),
        (
            ["train", str(tmp_path / "ok.npy"), "--axes", "YX", "--patch", "128,128", "--out", out],
            "too small for the patch",
        ),
        (["train", str(tmp_path / "junk.tif"), "--axes", "YX", "--out", out], "cannot read"),
        (
            ["train", str(tmp_path / "ok.npy"), "--axes", "YX", "--amp", "fp16", "--out", out],
            "fp16 mixed precision needs a GPU",
        ),
        (["train", str(tmp_path / "missing.tif"), "--axes", "YX", "--out", out], "missing.tif"),
        (
            [
                *["train", str(tmp_path / "ok.npy"), "--method", "noise2same", "--out", out],
                *["--regulariser-weight", "0.5"],
            ],
            "--regulariser-weight is a setting of neighbor2neighbor, not of noise2same",
        ),
        (
            [
                *["train", str(tmp_path / "ok.npy"), "--method", "n2v", "--out", out],
                *["--neighbour-pairs", "diagonal"],
            ],
            "--neighbour-pairs is a setting of neighbor2neighbor, not of n2v",
        ),
        (
            [
                "train",
                str(tmp_path / "ok.npy"),
                "--method",
                "n2v2",
                "--lambda-inv",
                "1",
                "--out",
                out,
            ],
            "--lambda-inv is a setting of noise2same, not of n2v2",
        ),
        (
            [
                "predict",
                str(tmp_path / "junk.safetensors"),
                str(tmp_path / "ok.npy"),
                "--out",
                str(tmp_path / "den.tif"),
            ],
            "model",
        ),
    ]


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    for argv, fragment in _errors(tmp_path):
        capsys.readouterr()
        assert main([*argv, "--help"] if False else argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and fragment in err, (argv, err)
        assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_train_amp_reaches_the_saved_model(tmp_path, capsys, amp):
    from selfdenoise import Denoiser

    noisy, _ = synthetic_2d()
    np.save(tmp_path / "noisy.npy", noisy)
    model = tmp_path / "model.safetensors"
    argv = ["train", str(tmp_path / "noisy.npy"), "--axes", "YX", "--out", str(model)]
    assert main([*argv, *TRAIN_FAST, "--amp", amp, "--quiet"]) == 0
    assert Denoiser.load(model).config.training.amp == amp


def test_train_regulariser_weight_reaches_the_saved_model(tmp_path, capsys):
    from selfdenoise import Denoiser

    noisy, _ = synthetic_2d()
    np.save(tmp_path / "noisy.npy", noisy)
    model = tmp_path / "model.safetensors"
    argv = ["train", str(tmp_path / "noisy.npy"), "--axes", "YX", "--out", str(model)]
    assert main([*argv, *TRAIN_FAST, "--regulariser-weight", "0.5", "--quiet"]) == 0
    assert Denoiser.load(model).config.regulariser_weight == 0.5
    # the weight and pixel pairs used, said (synthetic_2d has Gaussian noise: adjacent pairs)
    assert "regulariser weight 0.5, adjacent pixel pairs)" in capsys.readouterr().out
    assert main([*argv, *TRAIN_FAST, "--regulariser-weight", "auto", "--quiet"]) == 0
    loaded = Denoiser.load(model)
    assert loaded.config.regulariser_weight == "auto"
    said = f"regulariser weight {loaded.regulariser_weight:g}, adjacent pixel pairs)"
    assert said in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main([*argv, *TRAIN_FAST, "--regulariser-weight", "-1"])
    assert exited.value.code == 2
    assert "--regulariser-weight: expected a number >= 0" in capsys.readouterr().err


def test_torchrun_trains_with_two_gloo_processes(tmp_path):
    noisy, _ = synthetic_2d()
    np.save(tmp_path / "noisy.npy", noisy)
    model = tmp_path / "ddp.safetensors"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "selfdenoise.cli",
            "train",
            str(tmp_path / "noisy.npy"),
            "--axes",
            "YX",
            "--out",
            str(model),
            *TRAIN_FAST,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert model.exists()
    assert result.stdout.count("saved") == 1


def test_demo_trains_each_method_and_writes_outputs(tmp_path, capsys):
    """Step-bounded demo: the three headline numbers with a meaning and direction each, the
    other readouts behind --all-metrics."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--steps", "2", "--device", "cpu", "--method"]
    assert main([*args, "neighbor2neighbor", "noise2same"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("name "))
    block = lines[lines.index(header) + 1 :]
    rows = {line.split()[0]: line for line in block[: block.index("")]}
    for method in ("neighbor2neighbor", "noise2same"):
        assert f"{method} (" in header
        assert (out / f"denoised_{method}.tif").exists()
        assert (out / f"model_{method}.safetensors").exists()
    assert "nl-means (" in header and header.split()[-1] == "better"
    for metric in ("psnr", "ssim", "epi"):
        values = rows[metric].split()[1:-1]
        assert len(values) == 4 and np.all(np.isfinite([float(v) for v in values])), metric
        assert rows[metric].split()[-1] == "higher"
    legend = [line for line in lines if "Direction: " in line]
    assert [line.split()[0] for line in legend] == ["psnr", "ssim", "epi"]
    assert "canny_f1" not in rows and "residual_std" not in rows
    assert any("--all-metrics" in line for line in lines)
    assert {"noisy.tif", "clean.tif", "nl_means.tif"} <= {p.name for p in out.iterdir()}
    # the rest: `compare --explain` on the written files, the noisy baseline's residuals n/a
    names = ["noisy.tif", "nl_means.tif", "denoised_noise2same.tif"]
    argv = ["compare", *(str(out / n) for n in names), "--reference", str(out / "clean.tif")]
    assert main([*argv, "--noisy", str(out / "noisy.tif"), "--explain"]) == 0
    printed = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split() for line in printed[: printed.index("")]}
    assert [line.split()[0] for line in printed[1:5]] == ["data_range", "psnr", "ssim", "epi"]
    assert table["residual_std"][1:] == ["n/a", *table["residual_std"][2:4], "~sigma"]
    assert "n/a" not in table["residual_std"][2:4]
    assert sum("Direction: " in line for line in printed) == 14


def _uint8_pair():
    """The pair of tests/test_napari_first_contact.py's widget agreement test (same seed)."""
    rng = np.random.default_rng(3)
    clean = (40 + 150 * rng.random((64, 64)) ** 2).astype(np.uint8)  # range well below 255
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    denoised = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy, denoised


@pytest.mark.parametrize("data_range", [None, 200.0], ids=["auto", "200"])
def test_compare_psnr_ssim_agree_with_the_widget_rule(tmp_path, capsys, data_range):
    """The CLI side of the widget's agreement test: uint8 files are scored with the dtype
    range (255) unless --data-range is given, the range is printed in the text table, and the
    numbers equal ``metrics.compare`` on the same arrays (which the Compare widget shows)."""
    import tifffile

    from selfdenoise.metrics import compare, psnr, ssim

    clean, noisy, denoised = _uint8_pair()
    for name, array in (("clean", clean), ("noisy", noisy), ("denoised", denoised)):
        tifffile.imwrite(tmp_path / f"{name}.tif", array)
    argv = ["compare", str(tmp_path / "denoised.tif"), "--reference", str(tmp_path / "clean.tif")]
    argv += ["--noisy", str(tmp_path / "noisy.tif")]
    argv += [] if data_range is None else ["--data-range", str(data_range)]
    expected_range = 255.0 if data_range is None else data_range
    assert main([*argv, "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["settings"]["data_range"] == expected_range
    library = compare({"denoised": denoised}, clean, noisy, data_range=data_range)
    row = table["rows"][0]
    for metric in ("psnr", "ssim"):
        assert row[metric] == pytest.approx(library.column(metric)[0], rel=1e-9)
    float_range = float(np.ptp(clean.astype(np.float32)))  # what float32 layers would give
    assert float_range < 255
    assert row["psnr"] == pytest.approx(psnr(clean, denoised, data_range=expected_range))
    assert row["ssim"] == pytest.approx(ssim(clean, denoised, data_range=expected_range))
    assert row["psnr"] != pytest.approx(psnr(clean, denoised, data_range=float_range))
    assert main(argv) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].split() == ["data_range", f"{expected_range:.4f}"]
    assert text[2].split()[:2] == ["psnr", f"{row['psnr']:.4f}"]


def test_png_in_struct_axis_and_unit_kept(tmp_path, capsys):
    """PNG input (FMD ships PNGs), structN2V from the CLI, and the TIFF unit carried over."""
    import imageio.v3 as iio
    import tifffile

    from selfdenoise.api import Denoiser
    from selfdenoise.io import read_image

    noisy, _ = synthetic_2d((64, 64))
    grey = (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "fmd.png", grey)
    model = tmp_path / "struct.safetensors"
    argv = ["train", str(tmp_path / "fmd.png"), "--out", str(model), "--method", "n2v2"]
    assert main([*argv, "--struct-axis", "x", "--struct-span", "3", *TRAIN_FAST]) == 0
    masking = Denoiser.load(model).config.masking
    assert (masking.struct_axis, masking.struct_span) == (-1, 3)
    tifffile.imwrite(
        tmp_path / "fiji.tif",
        grey,
        imagej=True,
        resolution=(1 / 0.3, 1 / 0.3),
        metadata={"axes": "YX", "unit": "micron"},
    )
    out = tmp_path / "den.tif"
    assert main(["predict", str(model), str(tmp_path / "fiji.tif"), "--out", str(out)]) == 0
    denoised = read_image(out)
    assert (denoised.axes, denoised.unit) == ("YX", "um")
    assert denoised.scale == pytest.approx((0.3, 0.3))
    assert main(["predict", str(model), str(tmp_path / "fmd.png"), "--out", str(out)]) == 0
    assert read_image(out).data.shape == (64, 64)
    capsys.readouterr()
    assert main([*argv, "--method", "neighbor2neighbor", "--struct-axis", "y"]) == 2
    assert "--struct-axis needs a masking method" in capsys.readouterr().err
    assert main([*argv, "--struct-axis", "z"]) == 2
    assert "needs a Z axis" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A model trained for 2 steps through the API (for prediction tests)."""
    from selfdenoise.api import Denoiser

    noisy, _ = synthetic_2d((64, 64))
    model = Denoiser("n2v2", "YX", steps=2, steps_per_epoch=2, patch_shape=(32, 32), batch_size=2)
    model.continue_training(device="cpu")
    model.fit(noisy)
    return model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_predict_a_folder_skips_a_bad_file(tmp_path, tiny_model, capsys):
    import tifffile

    noisy, _ = synthetic_2d((48, 48))
    raw = tmp_path / "raw"
    raw.mkdir()
    tifffile.imwrite(raw / "a.tif", noisy)
    np.save(raw / "b.npy", noisy)
    (raw / "c.tif").write_bytes(b"not a tiff")
    out = tmp_path / "den"
    code = main(["predict", str(tiny_model), str(raw / "*"), "--out-dir", str(out)])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.npy"]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: {raw / 'c.tif'}: cannot read")
    assert "denoised 2 of 3 files" in captured.out and "1 failed" in captured.out
    assert np.load(out / "b.npy").shape == (48, 48)
    assert main(["predict", str(tiny_model), str(raw / "a.tif"), "--out-dir", str(out)]) == 0
    capsys.readouterr()
    assert main(["predict", str(tiny_model), str(raw / "*.tif"), "--out", str(out / "x.tif")]) == 2
    assert "use --out-dir" in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(raw / "*.png"), "--out-dir", str(out)]) == 2
    assert "no files match" in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(raw / "*.tif"), "--out-dir", str(raw)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err


def test_log_json_prints_one_object_per_report(tmp_path, tiny_model, capsys):
    noisy, _ = synthetic_2d((64, 64))
    np.save(tmp_path / "noisy.npy", noisy)
    out = tmp_path / "den.tif"
    argv = ["predict", str(tiny_model), str(tmp_path / "noisy.npy"), "--out", str(out)]
    assert main([*argv, "--tile", "32,32", "--batch", "1", "--log-json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[-1]["event"] == "wrote" and records[-1]["path"] == str(out)
    tiles = [r for r in records if r["event"] == "predict"]
    assert tiles and tiles[-1]["done"] == tiles[-1]["total"] >= 1
    model = tmp_path / "m.safetensors"
    train = ["train", str(tmp_path / "noisy.npy"), "--axes", "YX", "--out", str(model)]
    assert main([*train, *TRAIN_FAST, "--log-json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["event"] for r in records][:1] == ["start"] and records[-1]["event"] == "saved"
    assert records[0]["precision"] in ("float32", "bf16")  # what amp 'auto' is on this CPU
    steps = [r["step"] for r in records if r["event"] == "train"]
    assert steps and steps[-1] == 4 and "eta_seconds" in records[1]
    assert main([*train, *TRAIN_FAST, "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("saved ")


def test_progress_bar_shows_the_engine_eta(capsys, monkeypatch):
    from selfdenoise._cli import progress
    from selfdenoise._cli.progress import Output
    from selfdenoise.train import Progress

    monkeypatch.setattr(progress, "BAR_SECONDS", 0.0)  # draw every update

    output = Output("bar")
    for step in (1, 5, 10):
        output.training(
            Progress(
                step=step,
                total_steps=10,
                epoch=1,
                loss=0.5,
                val_loss=None,
                best_val_loss=None,
                learning_rate=1e-3,
                steps_per_second=2.0,
                eta_seconds=(10 - step) * 30.0,
                elapsed_seconds=step * 30.0,
            )
        )
    report = output.tiles("image.tif")
    for done in (1, 2, 3):
        report(done, 3, 3.0 - done)
    output.close()
    err = capsys.readouterr().err
    assert "training:  50%" in err and "step 5 loss 0.5000 eta 2m30s" in err
    assert "image.tif" in err and "3/3" in err


def test_a_three_level_ome_zarr_streams_to_an_ome_zarr_with_its_metadata(tmp_path, tiny_model):
    """Issue 15: OME-Zarr in (3 levels), OME-Zarr out with a pyramid; axes, scale and units
    kept; the level-0 values equal in-memory prediction; no scratch store left behind."""
    pytest.importorskip("ome_zarr")
    from selfdenoise import ome
    from selfdenoise.api import Denoiser

    noisy = np.stack([synthetic_2d((128, 128), seed=s)[0] for s in range(3)])
    source = ome.write_ome_zarr(
        tmp_path / "in.ome.zarr", noisy, "ZYX", scale=(2.0, 0.5, 0.5), units="µm", levels=3
    )
    assert len(ome.open_ome_zarr(source).levels) == 3
    out = tmp_path / "den.ome.zarr"
    argv = ["predict", str(tiny_model), str(source), "--out", str(out), "--tile", "64,64"]
    assert main([*argv, "--quiet"]) == 0
    image = ome.open_ome_zarr(out)
    assert image.axes == "ZYX" and len(image.levels) == 3
    assert image.scale == pytest.approx((2.0, 0.5, 0.5))
    assert image.units == ("micrometer",) * 3
    expected = Denoiser.load(tiny_model).predict(noisy, "ZYX")
    np.testing.assert_allclose(np.asarray(image.levels[0]), expected, atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["den.ome.zarr", "in.ome.zarr"]


def test_ome_tiff_physical_size_is_kept_through_predict(tmp_path, tiny_model):
    from selfdenoise import ome
    from selfdenoise.io import read_image

    noisy, _ = synthetic_2d((64, 64))
    source = ome.write_ome_tiff(tmp_path / "in.ome.tif", noisy, "YX", scale=(0.2, 0.3), units="nm")
    for name in ("den.ome.tif", "den.tif"):
        assert main(["predict", str(tiny_model), str(source), "--out", str(tmp_path / name)]) == 0
        image = read_image(tmp_path / name)
        assert image.axes == "YX" and image.scale == pytest.approx((0.2, 0.3))
        assert image.unit == "nanometer"
    assert ome.tiff_physical_metadata(tmp_path / "den.ome.tif")[1] == pytest.approx((0.2, 0.3))


def test_dask_scheduler_predicts_on_a_local_cluster(tmp_path, tiny_model, capsys):
    """--dask-scheduler: the chunks are predicted by the cluster's workers into the store;
    equal to local tiled prediction."""
    distributed = pytest.importorskip("distributed")
    from selfdenoise.api import Denoiser
    from selfdenoise.io import read_image

    noisy = np.stack([synthetic_2d((96, 80), seed=s)[0] for s in range(2)])
    np.save(tmp_path / "in.npy", noisy)
    with distributed.LocalCluster(
        n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None
    ) as cluster:
        argv = ["predict", str(tiny_model), str(tmp_path / "in.npy"), "--axes", "SYX"]
        argv += ["--dask-scheduler", cluster.scheduler_address, "--quiet"]
        plain = ["--no-restore-detail", "--no-collaborative-filter"]
        assert main([*argv, *plain, "--out", str(tmp_path / "den.zarr")]) == 0
        assert main([*argv, *plain, "--out", str(tmp_path / "den.npy")]) == 0
        assert main([*argv, "--out", str(tmp_path / "restored.npy")]) == 0
        prefixes = set(cluster.scheduler.task_prefixes)  # the work went through the scheduler
    model = Denoiser.load(tiny_model)
    expected = model.predict(noisy, "SYX", restore_detail=False, collaborative_filter=False)
    image = read_image(tmp_path / "den.zarr")
    assert image.axes == "SYX" and any("store" in name for name in prefixes), prefixes
    np.testing.assert_allclose(np.asarray(image.data), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "den.npy"), expected, atol=1e-5)
    # The detail restoration and the collaborative filter (on for this n2v2 model) run block
    # by block on the cluster, each block reading its own noise level: close to, not
    # bit-equal to, the local result.
    restored, local = np.load(tmp_path / "restored.npy"), model.predict(noisy, "SYX")
    assert np.abs(restored - local).mean() < 0.05 * np.abs(local - expected).mean() + 1e-3


def test_an_unreachable_dask_scheduler_is_a_one_line_error(tmp_path, tiny_model, capsys):
    pytest.importorskip("distributed")
    noisy, _ = synthetic_2d((32, 32))
    np.save(tmp_path / "in.npy", noisy)
    argv = ["predict", str(tiny_model), str(tmp_path / "in.npy"), "--out", str(tmp_path / "o.npy")]
    assert main([*argv, "--dask-scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the dask scheduler at 'tcp://127.0.0.1:9'")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("step", ["restore_detail", "collaborative_filter"])
def test_predict_steps_after_the_network_follow_the_model_unless_told(tmp_path, tiny_model, step):
    from selfdenoise.api import Denoiser
    from selfdenoise.io import read_image

    noisy, _ = synthetic_2d((64, 64))
    source = tmp_path / "in.npy"
    np.save(source, noisy)
    flag = "--" + step.replace("_", "-")
    outputs = {}
    for given in ("", flag, flag.replace("--", "--no-")):
        out = tmp_path / f"den{given}.npy"
        assert (
            main(["predict", str(tiny_model), str(source), "--out", str(out), *given.split()]) == 0
        )
        outputs[given] = read_image(out).data
    model = Denoiser.load(tiny_model, device="cpu")  # n2v2: both steps on by default
    assert np.allclose(outputs[""], model.predict(noisy), atol=1e-5)
    assert np.array_equal(outputs[""], outputs[flag])
    on = model.predict(noisy, **{step: True})
    assert np.allclose(outputs[flag], on, atol=1e-5)
    off = model.predict(noisy, **{step: False})
    assert np.allclose(outputs[flag.replace("--", "--no-")], off, atol=1e-5)
    assert not np.allclose(outputs[""], outputs[flag.replace("--", "--no-")], atol=1e-4)
    assert not np.allclose(on, off, atol=1e-4)
