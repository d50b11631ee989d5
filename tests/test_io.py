"""Tests for selfdenoise.io: images, model bundles and checkpoints."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import stat
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch
import zarr

from selfdenoise import SelfDenoiseError
from selfdenoise.io import (
    load_bundle,
    load_checkpoint,
    open_zarr_output,
    read_image,
    save_bundle,
    save_checkpoint,
    staged_zarr_output,
    write_image,
)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _assert_one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_import_does_not_import_torch():
    code = "import sys, selfdenoise.io; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- TIFF ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axes", "shape", "dtype", "scale"),
    [
        ("ZYX", (3, 16, 12), np.float32, (2.0, 0.5, 0.25)),
        ("TZYX", (2, 3, 8, 10), np.uint16, (4.0, 1.5, 0.2, 0.2)),
        ("CZYX", (2, 3, 8, 8), np.float32, (1.0, 3.0, 0.5, 0.5)),  # not ImageJ order
        ("SZYX", (2, 3, 8, 8), np.float64, (1.0, 2.0, 0.3, 0.3)),  # S is not ImageJ
    ],
)
def test_tiff_round_trip(tmp_path, rng, axes, shape, dtype, scale):
    image = (rng.random(shape) * 1000).astype(dtype)
    path = write_image(tmp_path / "image.tif", image, axes=axes, scale=scale)
    loaded = read_image(path)
    np.testing.assert_array_equal(np.asarray(loaded.data), image)
    assert loaded.data.dtype == dtype
    assert loaded.axes == axes
    assert loaded.scale == pytest.approx(scale, rel=1e-5)
    assert loaded.path == path


def test_imagej_file_is_imagej(tmp_path):
    write_image(tmp_path / "stack.tif", np.zeros((2, 3, 8, 8), np.uint16), axes="TZYX")
    with tifffile.TiffFile(tmp_path / "stack.tif") as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "TZYX"


def test_tiff_without_metadata(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(
        tmp_path / "stack.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack"
    )
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    plain = read_image(tmp_path / "plain.tif")
    assert (plain.axes, plain.scale) == ("YX", None)
    assert read_image(tmp_path / "stack.tif").axes is None  # tifffile says 'QYX': unknown
    assert read_image(tmp_path / "rgb.tif").axes == "YXC"


def test_imagej_spacing_and_resolution_are_read(tmp_path):
    metadata = {"axes": "ZYX", "spacing": 2.5, "unit": "um"}
    data = np.zeros((4, 8, 8), np.uint16)
    tifffile.imwrite(
        tmp_path / "fiji.tif", data, imagej=True, metadata=metadata, resolution=(5.0, 4.0)
    )
    loaded = read_image(tmp_path / "fiji.tif")
    assert loaded.axes == "ZYX"
    assert loaded.scale == pytest.approx((2.5, 0.25, 0.2))


def test_memmap_read(tmp_path, rng):
    image = rng.random((3, 16, 16)).astype(np.float32)
    write_image(tmp_path / "raw.tif", image, axes="ZYX")
    loaded = read_image(tmp_path / "raw.tif", memmap=True)
    assert isinstance(loaded.data, np.memmap)
    np.testing.assert_array_equal(loaded.data, image)
    tifffile.imwrite(tmp_path / "zip.tif", image, compression="zlib", photometric="minisblack")
    compressed = read_image(tmp_path / "zip.tif", memmap=True)
    assert not isinstance(compressed.data, np.memmap)
    np.testing.assert_array_equal(compressed.data, image)


# --- npy and zarr --------------------------------------------------------------------------


def test_npy_round_trip(tmp_path, rng):
    image = rng.random((4, 5, 6)).astype(np.float32)
    write_image(tmp_path / "image.npy", image, axes="ZYX")
    loaded = read_image(tmp_path / "image.npy")
    assert isinstance(loaded.data, np.memmap)
    np.testing.assert_array_equal(loaded.data, image)
    assert (loaded.axes, loaded.scale) == (None, None)


def test_npy_with_objects_is_refused(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SelfDenoiseError, match="cannot read") as error:
        read_image(tmp_path / "objects.npy")
    _assert_one_line(error)


def test_zarr_round_trip(tmp_path, rng):
    image = rng.random((5, 40, 30)).astype(np.float32)
    write_image(tmp_path / "image.zarr", image, axes="ZYX", scale=(3.0, 1.0, 1.0))
    loaded = read_image(tmp_path / "image.zarr")
    assert isinstance(loaded.data, zarr.Array)
    np.testing.assert_array_equal(loaded.data[:], image)
    assert loaded.axes == "ZYX"
    assert loaded.scale == (3.0, 1.0, 1.0)


def test_zarr_from_dask(tmp_path):
    dask_array = pytest.importorskip("dask.array")
    image = dask_array.arange(2 * 70 * 20, dtype=np.int32).reshape(2, 70, 20).rechunk((1, 35, 20))
    write_image(tmp_path / "lazy.zarr", image, axes="TYX")
    np.testing.assert_array_equal(read_image(tmp_path / "lazy.zarr").data[:], image.compute())


def test_zarr_group(tmp_path):
    group = zarr.open_group(str(tmp_path / "one.zarr"), mode="w")
    group.create_array("raw", shape=(8, 8), dtype="uint8", chunks=(4, 4))[:] = 7
    loaded = read_image(tmp_path / "one.zarr")
    assert loaded.data.shape == (8, 8)
    assert int(loaded.data[0, 0]) == 7
    group.create_array("other", shape=(4, 4), dtype="uint8")
    with pytest.raises(SelfDenoiseError, match="2 arrays") as error:
        read_image(tmp_path / "one.zarr")
    _assert_one_line(error)


def test_open_zarr_output_incremental(tmp_path):
    output = open_zarr_output(tmp_path / "out.zarr", (2, 64, 48), np.float32, chunks=(1, 32, 32))
    output[0, :32] = 1.0
    output[1, 32:] = 2.0
    data = read_image(tmp_path / "out.zarr").data
    assert data.chunks == (1, 32, 32)
    assert float(data[0, 0, 0]) == 1.0 and float(data[1, 63, 47]) == 2.0
    assert float(data[0, 40, 0]) == 0.0
    default = open_zarr_output(tmp_path / "default.zarr", (3, 20, 600, 700), "uint16")
    assert default.chunks == (1, 20, 256, 256)


# --- image errors --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(SelfDenoiseError, match=r"cannot read .*x\.tif.*no such file") as error:
        read_image(tmp_path / "x.tif")
    assert "supported: OME-TIFF, TIFF, .npy, OME-Zarr, .zarr, PNG" in _assert_one_line(error)


def test_unsupported_and_corrupt_files(tmp_path, rng):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG....")
    (tmp_path / "broken.tif").write_bytes(rng.bytes(1000))
    (tmp_path / "broken.npy").write_bytes(b"not numpy\n" * 5)
    for name in ("photo.png", "broken.tif", "broken.npy"):
        with pytest.raises(SelfDenoiseError, match=f"cannot read '.*{name}'") as error:
            read_image(tmp_path / name)
        assert "supported: OME-TIFF, TIFF, .npy, OME-Zarr, .zarr, PNG" in _assert_one_line(error)


def test_write_errors(tmp_path):
    image = np.zeros((4, 4), np.float32)
    with pytest.raises(SelfDenoiseError, match="unsupported file type"):
        write_image(tmp_path / "out.jp2", image)
    with pytest.raises(
        SelfDenoiseError,
        match=r"PNG is read-only here; use \.ome\.tif, \.tif, \.npy, \.ome\.zarr, \.zarr",
    ):
        write_image(tmp_path / "out.png", image)
    with pytest.raises(SelfDenoiseError, match="cannot write") as error:
        write_image(tmp_path / "missing" / "out.tif", image)
    _assert_one_line(error)
    with pytest.raises(SelfDenoiseError, match="axes"):
        write_image(tmp_path / "out.tif", image, axes="ZYX")
    with pytest.raises(SelfDenoiseError, match="scale"):
        write_image(tmp_path / "out.tif", image, axes="YX", scale=(1.0,))


# --- model bundles -------------------------------------------------------------------------


def _state_dict() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "conv.bias": torch.randn(4, generator=generator),
        "bn.num_batches_tracked": torch.tensor(17, dtype=torch.int64),
        "half": torch.randn(5, generator=generator).to(torch.bfloat16),
        "transposed": torch.randn(3, 6, generator=generator).t(),  # not contiguous
    }


METADATA = {
    "config": {"method": "n2v2", "network": {"depth": 2}},
    "normaliser": {"mean": [0.5], "std": [0.25]},
    "history": [{"step": 1, "loss": 0.3}],
    "version": "0.1.0",
}


def test_bundle_round_trip(tmp_path):
    state = _state_dict()
    path = save_bundle(tmp_path / "model", state, METADATA)
    assert path == tmp_path / "model.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    for target in (path, tmp_path / "model"):
        loaded, metadata = load_bundle(target)
        assert metadata == METADATA
        assert loaded.keys() == state.keys()
        for key, tensor in state.items():
            assert loaded[key].dtype == tensor.dtype
            assert torch.equal(loaded[key], tensor), key


def test_bundle_keeps_a_given_suffix(tmp_path):
    path = save_bundle(tmp_path / "weights.v2", _state_dict(), {})
    assert path.name == "weights.v2"
    assert load_bundle(path)[1] == {}


def _expect_not_a_model(path) -> str:
    with pytest.raises(SelfDenoiseError, match="is not a napari-selfdenoise model file") as error:
        load_bundle(path)
    return _assert_one_line(error)


def test_truncated_bundle(tmp_path):
    path = save_bundle(tmp_path / "model.safetensors", _state_dict(), METADATA)
    data = path.read_bytes()
    for length in (len(data) - 10, len(data) // 2, 20, 4, 0):
        path.write_bytes(data[:length])
        _expect_not_a_model(path)


def test_random_bytes_bundle(tmp_path, rng):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(rng.bytes(4096))
    _expect_not_a_model(path)


def test_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    assert "no napari-selfdenoise metadata" in _expect_not_a_model(path)


def test_newer_bundle_format_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "future.safetensors"
    header = {"selfdenoise": json.dumps({}), "selfdenoise_format": "99"}
    save_file({"w": torch.zeros(3)}, str(path), metadata=header)
    with pytest.raises(SelfDenoiseError, match="newer napari-selfdenoise"):
        load_bundle(path)


def test_missing_bundle(tmp_path):
    with pytest.raises(SelfDenoiseError, match="does not exist"):
        load_bundle(tmp_path / "nothing.safetensors")


class _Exploit:
    """Unpickling this object runs code that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


def test_pickle_files_are_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    zipped = tmp_path / "zipped.safetensors"
    torch.save({"model": _Exploit(marker)}, zipped)
    pickle.loads(raw.read_bytes())  # the exploit works when unpickled ...
    assert marker.exists()
    marker.unlink()
    for path in (raw, zipped):  # ... but loading it as a model never unpickles
        assert "pickled" in _expect_not_a_model(path)
        with pytest.raises(SelfDenoiseError, match="cannot resume"):
            load_checkpoint(path)
    assert not marker.exists()


# --- checkpoints ---------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=10)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    optimiser.step()
    scheduler.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimiser.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": 1,
        "rng": {"torch": torch.get_rng_state(), "generator": torch.Generator().get_state()},
        "extras": {"history": [{"loss": 0.5}], "best": None, "config": METADATA["config"]},
    }
    path = save_checkpoint(tmp_path / "checkpoint.pt", state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    loaded = load_checkpoint(path)
    assert loaded["step"] == 1
    assert loaded["extras"] == state["extras"]
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    for key, tensor in state["model"].items():
        assert torch.equal(loaded["model"][key], tensor)
    optimiser.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    assert loaded["optimizer"]["state"][0]["step"] == 1


def test_bad_checkpoints(tmp_path, rng):
    with pytest.raises(SelfDenoiseError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(rng.bytes(512))
    with pytest.raises(SelfDenoiseError, match="cannot resume") as error:
        load_checkpoint(broken)
    _assert_one_line(error)
    not_a_dict = tmp_path / "list.pt"
    torch.save([1, 2], not_a_dict)
    with pytest.raises(SelfDenoiseError, match="holds no state"):
        load_checkpoint(not_a_dict)


# --- pictures, units, series ---------------------------------------------------------------


def test_pictures_are_read_through_imageio(tmp_path, rng):
    import imageio.v3 as iio

    grey = (rng.random((12, 10)) * 255).astype(np.uint8)
    rgb = (rng.random((12, 10, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "grey.png", grey)
    iio.imwrite(tmp_path / "rgb.PNG", rgb)
    iio.imwrite(tmp_path / "grey.bmp", grey)
    for name, expected, axes in (("grey.png", grey, "YX"), ("rgb.PNG", rgb, "YXC")):
        loaded = read_image(tmp_path / name)
        np.testing.assert_array_equal(loaded.data, expected)
        assert (loaded.axes, loaded.scale, loaded.unit) == (axes, None, None)
    np.testing.assert_array_equal(read_image(tmp_path / "grey.bmp").data, grey)


@pytest.mark.parametrize(("axes", "dtype"), [("ZYX", np.uint16), ("SYX", np.float64)])
def test_unit_is_kept(tmp_path, axes, dtype):
    image = np.zeros((2, 8, 8), dtype)
    for name in ("unit.tif", "unit.zarr"):
        write_image(tmp_path / name, image, axes=axes, scale=(2.0, 0.5, 0.5), unit="µm")
        loaded = read_image(tmp_path / name)
        assert (loaded.axes, loaded.unit) == (axes, "um")
        assert loaded.scale == pytest.approx((2.0, 0.5, 0.5))
    if axes == "ZYX":
        with tifffile.TiffFile(tmp_path / "unit.tif") as tif:
            assert tif.imagej_metadata["unit"] == "um"


def test_imagej_micron_unit_is_read(tmp_path):
    metadata = {"axes": "ZYX", "spacing": 2.0, "unit": "micron"}
    path = tmp_path / "fiji.tif"
    tifffile.imwrite(
        path, np.zeros((2, 8, 8), np.uint8), imagej=True, metadata=metadata, resolution=(4, 4)
    )
    assert read_image(path).unit == "um"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), imagej=True, metadata={"unit": "um"})
    assert read_image(path).unit is None  # a unit without a pixel size is dropped


def _two_series(path):
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((8, 8), np.uint8))
        tif.write(np.ones((3, 16, 16), np.uint16), photometric="minisblack")


def test_multi_series_tiff_warns_or_takes_series(tmp_path):
    path = tmp_path / "two.tif"
    _two_series(path)
    with pytest.warns(UserWarning, match=r"holds 2 image series; reading series 0 .*--series"):
        assert read_image(path).data.shape == (8, 8)
    second = read_image(path, series=1)
    assert second.data.shape == (3, 16, 16)
    assert np.all(np.asarray(second.data) == 1)
    with pytest.raises(SelfDenoiseError, match="holds 2 image series") as error:
        read_image(path, series=2)
    _assert_one_line(error)
    np.save(tmp_path / "one.npy", np.zeros((4, 4)))
    with pytest.raises(SelfDenoiseError, match="series applies to TIFF"):
        read_image(tmp_path / "one.npy", series=1)


# --- atomic writes, permissions, output checks ---------------------------------------------


def _no_leftovers(folder):
    return [p.name for p in folder.iterdir() if ".partial" in p.name or p.name.endswith(".old")]


def _disk_full(*args, **kwargs):
    import errno

    path = next(a for a in args if isinstance(a, str | os.PathLike))
    with open(path, "wb") as handle:  # a partial file, as a full disk leaves it
        handle.write(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_failed_image_write_keeps_the_old_file(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"out{suffix}"
    write_image(path, np.full((4, 4), 7, np.uint16))
    before = path.read_bytes()
    monkeypatch.setattr(tifffile, "imwrite", _disk_full)
    monkeypatch.setattr(np, "save", _disk_full)
    with pytest.raises(SelfDenoiseError, match="No space left on device") as error:
        write_image(path, np.zeros((4, 4), np.uint16))
    _assert_one_line(error)
    assert path.read_bytes() == before
    assert _no_leftovers(tmp_path) == []


def test_failed_zarr_write_keeps_the_old_store(tmp_path):
    path = tmp_path / "out.zarr"
    write_image(path, np.full((4, 4), 7.0, np.float32), axes="YX")

    class Broken:
        shape, dtype, ndim = (4, 4), np.dtype(np.float32), 2

        def __getitem__(self, key):
            raise OSError(28, "No space left on device")

    with pytest.raises(SelfDenoiseError, match="No space left") as error:
        write_image(path, Broken())
    _assert_one_line(error)
    np.testing.assert_array_equal(read_image(path).data[:], 7.0)
    assert _no_leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), staged_zarr_output(path, (4, 4), np.float32) as out:
        out[:2] = 1.0
        raise KeyboardInterrupt
    np.testing.assert_array_equal(read_image(path).data[:], 7.0)
    with staged_zarr_output(path, (4, 4), np.float32) as out:
        out[:] = 3.0
    np.testing.assert_array_equal(read_image(path).data[:], 3.0)
    assert _no_leftovers(tmp_path) == []


def test_failed_model_and_checkpoint_writes_keep_the_old_file(tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    model = save_bundle(tmp_path / "model.safetensors", _state_dict(), METADATA)
    checkpoint = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    before = model.read_bytes(), checkpoint.read_bytes()

    def fail(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    monkeypatch.setattr(torch, "save", _disk_full)
    with pytest.raises(SelfDenoiseError, match=r"cannot write .*No space left") as error:
        save_bundle(model, _state_dict(), METADATA)
    _assert_one_line(error)
    with pytest.raises(SelfDenoiseError, match=r"cannot write .*No space left") as error:
        save_checkpoint(checkpoint, {"step": 2})
    _assert_one_line(error)
    assert (model.read_bytes(), checkpoint.read_bytes()) == before
    assert _no_leftovers(tmp_path) == []


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        paths = [
            save_bundle(tmp_path / "model.safetensors", _state_dict(), METADATA),
            save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1}),
            write_image(tmp_path / "image.tif", np.zeros((4, 4), np.uint8)),
        ]
        store = write_image(tmp_path / "image.zarr", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE(store.stat().st_mode) == 0o755


def test_check_output_path(tmp_path):
    from selfdenoise.io import check_output_folder, check_output_path

    image = tmp_path / "in.tif"
    image.write_bytes(b"x")
    store = tmp_path / "in.zarr"
    store.mkdir()
    (tmp_path / "link.tif").symlink_to(image)
    (tmp_path / "file").write_bytes(b"x")
    refused = {
        image: "would overwrite the input",
        tmp_path / "link.tif": "would overwrite the input",
        tmp_path / "sub" / ".." / "in.tif": "would overwrite the input",
        store: "would overwrite the input",
        store / "0": "would overwrite the input",
        tmp_path / "missing" / "out.tif": "does not exist; create it first",
        tmp_path / "file" / "out.tif": "is not a folder",
        tmp_path: "would overwrite the input",
    }
    for path, message in refused.items():
        with pytest.raises(SelfDenoiseError, match=message) as error:
            check_output_path(path, [image, store], option="--out")
        assert _assert_one_line(error).startswith(("--out", "cannot write --out")), path
    with pytest.raises(SelfDenoiseError, match="is a folder"):
        check_output_path(tmp_path, option="--out")
    assert check_output_path(tmp_path / "out.tif", [image, store]) == tmp_path / "out.tif"
    assert check_output_folder(tmp_path / "new" / "deeper", [image]) == tmp_path / "new" / "deeper"
    with pytest.raises(SelfDenoiseError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(SelfDenoiseError, match="would write into the input"):
        check_output_folder(store / "checkpoints", [image, store])
    assert check_output_folder(tmp_path, [image]) == tmp_path


def test_ome_zarr_through_the_format_table(tmp_path, rng):
    """read_image takes level 0 of an OME-Zarr lazily with axes, scale and unit; write_image
    writes .ome.zarr with a pyramid and .zarr as before (and still reads that layout)."""
    pytest.importorskip("ome_zarr")
    import dask.array as da

    from selfdenoise import ome

    data = rng.random((4, 64, 64)).astype(np.float32)
    path = write_image(tmp_path / "a.ome.zarr", data, "ZYX", (3.0, 0.5, 0.5), unit="um")
    assert ome.is_ome_zarr(path) and len(ome.open_ome_zarr(path).levels) >= 2
    image = read_image(path)
    assert isinstance(image.data, da.Array)
    assert (image.axes, image.scale, image.unit) == ("ZYX", (3.0, 0.5, 0.5), "um")
    np.testing.assert_array_equal(np.asarray(image.data), data)
    plain = write_image(tmp_path / "b.zarr", data, "ZYX", (3.0, 0.5, 0.5), unit="um")
    assert not ome.is_ome_zarr(plain)
    image = read_image(plain)
    assert (image.axes, image.scale, image.unit) == ("ZYX", (3.0, 0.5, 0.5), "um")
    ome.write_ome_zarr(tmp_path / "c.zarr", data, "ZYX", scale=(3.0, 1.0, 1.0))
    assert read_image(tmp_path / "c.zarr").scale == (3.0, 1.0, 1.0)  # NGFF in a plain name


def test_ome_tiff_through_the_format_table(tmp_path, rng):
    data = rng.random((3, 32, 32)).astype(np.float32)
    path = write_image(tmp_path / "a.ome.tif", data, "ZYX", (2.0, 0.25, 0.25), unit="um")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
    image = read_image(path)
    assert (image.axes, image.scale, image.unit) == ("ZYX", (2.0, 0.25, 0.25), "um")
    np.testing.assert_array_equal(image.data, data)
    tifffile.imwrite(  # somebody else's OME-TIFF: physical sizes from the OME-XML
        tmp_path / "b.ome.tif",
        data,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.1,
            "PhysicalSizeY": 0.1,
            "PhysicalSizeZ": 1.5,
            "PhysicalSizeXUnit": "nm",
        },
    )
    image = read_image(tmp_path / "b.ome.tif")
    assert image.axes == "ZYX" and image.scale == pytest.approx((1.5, 0.1, 0.1))


def test_ome_zarr_without_the_library_is_a_one_line_install_hint(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_ome_zarr(name, *args, **kwargs):
        if name.startswith("ome_zarr"):
            raise ImportError("No module named 'ome_zarr'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ome_zarr)
    with pytest.raises(SelfDenoiseError, match=r"napari-selfdenoise\[ome\]") as error:
        write_image(tmp_path / "a.ome.zarr", np.zeros((32, 32), np.float32), "YX")
    _assert_one_line(error)
    assert not (tmp_path / "a.ome.zarr").exists()
