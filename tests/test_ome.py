"""OME formats: OME-Zarr (NGFF 0.4/0.5) round trips and pyramids, TIFF physical sizes, npe2 I/O."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from selfdenoise import SelfDenoiseError, io, ome
from selfdenoise._napari import _ome_io

pytest.importorskip("ome_zarr", reason="the 'ome' extra (ome-zarr) is part of the testing extra")

ROOT = Path(__file__).resolve().parents[1]


def _image(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 1000).astype(dtype)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".old"))]


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize(
    ("axes", "shape", "scale"),
    [
        ("YX", (48, 40), (0.25, 0.5)),
        ("ZYX", (6, 40, 32), (2.0, 0.3, 0.3)),
        ("CZYX", (2, 5, 32, 32), (1.0, 1.5, 0.1, 0.1)),
    ],
)
def test_ngff_round_trip_keeps_axes_scale_and_units(tmp_path, version, axes, shape, scale):
    data = _image(shape, np.uint16)
    path = ome.write_ome_zarr(
        tmp_path / "img.ome.zarr", data, axes, scale=scale, units="µm", version=version
    )
    assert ome.is_ome_zarr(path)
    array, read_axes, read_scale, units = ome.read_ome_zarr(path)
    assert read_axes == axes
    assert read_scale == pytest.approx(scale)
    expected_units = tuple("micrometer" if a in "ZYX" else None for a in axes)
    assert units == expected_units
    assert array.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(array), data)
    assert ome.open_ome_zarr(path).version == version
    assert _leftovers(tmp_path) == []


def test_axes_are_written_in_ngff_order(tmp_path):
    data = _image((32, 40, 3))
    path = ome.write_ome_zarr(tmp_path / "rgb.ome.zarr", data, "YXC", scale=(0.5, 0.25, 1.0))
    array, axes, scale, _ = ome.read_ome_zarr(path)
    assert axes == "CYX"
    assert scale == pytest.approx((1.0, 0.5, 0.25))
    np.testing.assert_array_equal(np.asarray(array), np.moveaxis(data, -1, 0))
    samples = ome.write_ome_zarr(tmp_path / "s.ome.zarr", _image((3, 2, 32, 32)), "STYX")
    assert ome.read_ome_zarr(samples)[1] == "TSYX"


def test_three_level_input_from_the_library_reads_level_0_with_its_scale(tmp_path):
    from ome_zarr.writer import write_image

    data = _image((8, 64, 64), np.uint8)
    path = tmp_path / "other.zarr"  # written by ome-zarr-py itself, not by us
    write_image(
        data,
        str(path),
        scale_factors=[{"y": 2, "x": 2}, {"y": 4, "x": 4}],
        axes=["z", "y", "x"],
        scale={"z": 3.0, "y": 0.2, "x": 0.2},
        axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
    )
    assert ome.is_ome_zarr(path)
    image = ome.open_ome_zarr(path)
    assert [level.shape for level in image.levels] == [(8, 64, 64), (8, 32, 32), (8, 16, 16)]
    array, axes, scale, units = ome.read_ome_zarr(path)
    assert (array.shape, axes) == ((8, 64, 64), "ZYX")
    assert scale == pytest.approx((3.0, 0.2, 0.2))
    assert units == ("nanometer",) * 3
    np.testing.assert_array_equal(np.asarray(array), data)


def test_bioformats2raw_layout_reads_its_first_image(tmp_path):
    import json

    root = tmp_path / "converted.ome.zarr"
    ome.write_ome_zarr(root / "0", _image((32, 32)), "YX", scale=(0.3, 0.3))
    layout = {"ome": {"version": "0.5", "bioformats2raw.layout": 3}}
    meta = {"zarr_format": 3, "node_type": "group", "attributes": layout}
    (root / "zarr.json").write_text(json.dumps(meta))
    assert ome.is_ome_zarr(root)
    assert ome.read_ome_zarr(root)[1:3] == ("YX", (0.3, 0.3))


def test_pyramid_levels_have_the_expected_shapes_and_scales(tmp_path):
    isotropic = ome.write_ome_zarr(
        tmp_path / "iso.ome.zarr", _image((2, 40, 64, 64)), "CZYX", scale=(1, 1, 1, 1), levels=3
    )
    image = ome.open_ome_zarr(isotropic)
    # Z halves once (20 planes left), not twice (10 < 16); Y and X halve at every level
    shapes = [level.shape for level in image.levels]
    assert shapes == [(2, 40, 64, 64), (2, 20, 32, 32), (2, 20, 16, 16)]
    anisotropic = ome.write_ome_zarr(
        tmp_path / "aniso.ome.zarr", _image((40, 64, 64)), "ZYX", scale=(2.0, 0.5, 0.5)
    )
    shapes = [level.shape for level in ome.open_ome_zarr(anisotropic).levels]
    assert shapes == [(40, 64, 64), (40, 32, 32), (40, 16, 16)]
    small = ome.write_ome_zarr(tmp_path / "small.ome.zarr", _image((20, 40)), "YX", levels=5)
    assert [level.shape for level in ome.open_ome_zarr(small).levels] == [(20, 40)]


def test_pyramid_levels_carry_their_own_scale_in_the_metadata(tmp_path):
    import zarr

    path = ome.write_ome_zarr(tmp_path / "p.ome.zarr", _image((64, 64)), "YX", scale=(0.5, 0.5))
    multiscale = dict(zarr.open_group(str(path), mode="r").attrs)["ome"]["multiscales"][0]
    scales = [
        next(t["scale"] for t in d["coordinateTransformations"] if t["type"] == "scale")
        for d in multiscale["datasets"]
    ]
    assert scales == [[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]]


def test_pyramid_factors_rules():
    assert ome.pyramid_factors((64, 64), "YX", 1) == []
    assert ome.pyramid_factors((128, 128), "YX", 3) == [{"y": 2, "x": 2}, {"y": 4, "x": 4}]
    factors = ome.pyramid_factors((128, 256, 256), "ZYX", 4, scale=(1.0, 1.0, 1.0))
    assert [f.get("z", 1) for f in factors] == [2, 4, 8]
    factors = ome.pyramid_factors((128, 256, 256), "ZYX", 4, scale=(1.0, 0.5, 0.5))
    assert [f.get("z", 1) for f in factors] == [1, 2, 4]


class _Spy:
    """An array that records how much of itself each read asks for."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.largest = 0

    def __getitem__(self, index):
        block = self.data[index]
        self.largest = max(self.largest, block.size)
        return block


def test_writing_streams_blocks_and_never_reads_the_whole_array(tmp_path):
    spy = _Spy(_image((8, 64, 64)))
    path = ome.write_ome_zarr(tmp_path / "big.ome.zarr", spy, "ZYX", chunks=(2, 32, 32))
    assert 0 < spy.largest <= 2 * 32 * 32
    np.testing.assert_array_equal(np.asarray(ome.read_ome_zarr(path)[0]), spy.data)


class _Failing(_Spy):
    def __getitem__(self, index):
        raise OSError("disk went away")


def test_a_failed_write_keeps_the_existing_store_and_leaves_no_temporaries(tmp_path):
    path = ome.write_ome_zarr(tmp_path / "keep.ome.zarr", _image((32, 32)), "YX", scale=(2, 2))
    with pytest.raises(SelfDenoiseError, match="cannot write") as info:
        ome.write_ome_zarr(path, _Failing(_image((32, 32))), "YX")
    assert "\n" not in str(info.value)
    assert ome.read_ome_zarr(path)[2] == (2.0, 2.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ome.zarr"]
    replaced = ome.write_ome_zarr(path, np.ones((32, 32), np.float32), "YX")
    assert float(np.asarray(ome.read_ome_zarr(replaced)[0]).mean()) == 1.0
    assert _leftovers(tmp_path) == []


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(SelfDenoiseError, match="scale has 1 values"):
        ome.write_ome_zarr(tmp_path / "x.ome.zarr", _image((32, 32)), "YX", scale=(1.0,))
    with pytest.raises(SelfDenoiseError, match="version"):
        ome.write_ome_zarr(tmp_path / "x.ome.zarr", _image((32, 32)), "YX", version="0.3")
    with pytest.raises(SelfDenoiseError, match="not an OME-Zarr image"):
        ome.read_ome_zarr(tmp_path / "missing.zarr")


def test_stores_from_the_old_writer_are_not_mistaken_for_ome(tmp_path):
    old = io.write_image(tmp_path / "old.zarr", _image((4, 32, 32)), "ZYX", (2.0, 1.0, 1.0))
    assert not ome.is_ome_zarr(old)
    assert io.read_image(old).scale == (2.0, 1.0, 1.0)  # the old reader still takes it
    assert _ome_io.ome_zarr_reader(str(old)) is None
    assert not ome.is_ome_zarr(io.write_image(tmp_path / "a.tif", _image((8, 8)), "YX"))


def test_unit_names_follow_ngff():
    assert ome.normalize_unit("µm") == "micrometer"
    assert ome.normalize_unit("micron") == "micrometer"
    assert ome.normalize_unit("\\u00B5m") == "micrometer"
    assert ome.normalize_unit("nm") == "nanometer"
    assert ome.normalize_unit("pixel") is None
    assert ome.normalize_unit(None) is None


# --- TIFF -------------------------------------------------------------------------------


def test_ome_tiff_physical_size_is_kept(tmp_path):
    data = _image((2, 5, 32, 48), np.uint16)
    path = ome.write_ome_tiff(
        tmp_path / "a.ome.tif", data, "CZYX", scale=(1.0, 1.5, 0.25, 0.125), units="micrometer"
    )
    axes, scale, units = ome.tiff_physical_metadata(path)
    assert axes == "CZYX"
    assert scale == pytest.approx((1.0, 1.5, 0.25, 0.125))
    assert units == (None, "micrometer", "micrometer", "micrometer")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        assert ome.tiff_physical_metadata(tif)[1] == pytest.approx(scale)
        np.testing.assert_array_equal(tif.series[0].asarray(), data)
    assert _leftovers(tmp_path) == []


def test_ome_tiff_from_a_lazy_array_is_written_slab_by_slab(tmp_path):
    import dask.array as da

    spy = _Spy(_image((6, 32, 32), np.uint16))
    lazy = da.from_array(spy, chunks=(2, 32, 32))
    path = ome.write_ome_tiff(tmp_path / "lazy.ome.tif", lazy, "ZYX", (3.0, 0.5, 0.5))
    assert 0 < spy.largest <= 2 * 32 * 32
    assert ome.tiff_physical_metadata(path)[:2] == ("ZYX", (3.0, 0.5, 0.5))
    np.testing.assert_array_equal(tifffile.imread(path), spy.data)


@pytest.mark.parametrize(
    ("axes", "shape", "read_axes"),
    [
        ("STYX", (3, 2, 16, 16), "STYX"),
        ("YXC", (16, 16, 3), "CYX"),
        ("TCZYX", (2, 3, 2, 8, 8), None),
    ],
)
def test_ome_tiff_axes_come_back_in_ome_order(tmp_path, axes, shape, read_axes):
    data = _image(shape)
    scale = tuple(4.0 if a in "YX" else 1.0 for a in axes)
    path = ome.write_ome_tiff(tmp_path / "a.ome.tif", data, axes, scale)
    read = ome.tiff_physical_metadata(path)
    assert read[0] == (read_axes or axes)
    assert read[1][-2:] == (4.0, 4.0)
    expected = np.moveaxis(data, -1, 0) if axes == "YXC" else data
    np.testing.assert_array_equal(tifffile.imread(path), expected)


def test_ome_tiff_nanometers_and_time(tmp_path):
    path = ome.write_ome_tiff(
        tmp_path / "t.ome.tif", _image((3, 16, 16)), "TYX", (0.5, 20.0, 20.0), units="nm"
    )
    axes, scale, units = ome.tiff_physical_metadata(path)
    assert (axes, scale) == ("TYX", (0.5, 20.0, 20.0))
    assert units == ("second", "nanometer", "nanometer")


def test_imagej_tiff_physical_size_is_read(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        _image((5, 32, 32), np.uint16),
        imagej=True,
        resolution=(1 / 0.2, 1 / 0.2),
        metadata={"axes": "ZYX", "spacing": 2.5, "unit": "micron"},
    )
    axes, scale, units = ome.tiff_physical_metadata(path)
    assert axes == "ZYX"
    assert scale == pytest.approx((2.5, 0.2, 0.2))
    assert units == ("micrometer",) * 3


def test_plain_tiff_without_sizes_has_no_scale(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, _image((16, 16)))
    assert ome.tiff_physical_metadata(path) == ("YX", None, None)
    with pytest.raises(SelfDenoiseError, match="cannot read"):
        ome.tiff_physical_metadata(tmp_path / "missing.tif")


# --- npe2 reader and writer --------------------------------------------------------------


def test_npe2_reader_returns_a_lazy_multiscale_layer(tmp_path):
    import dask.array as da

    path = ome.write_ome_zarr(
        tmp_path / "cells.ome.zarr", _image((4, 64, 64)), "ZYX", (2.0, 0.5, 0.5), units="µm"
    )
    reader = _ome_io.ome_zarr_reader(str(path))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image"
    assert kwargs["multiscale"] is True
    assert [level.shape for level in data] == [(4, 64, 64), (4, 32, 32), (4, 16, 16)]
    assert all(isinstance(level, da.Array) for level in data)
    assert kwargs["scale"] == pytest.approx((2.0, 0.5, 0.5))
    assert kwargs["metadata"]["axes"] == "ZYX"
    assert kwargs["units"] == ("micrometer",) * 3


def test_npe2_reader_declines_what_is_not_ome(tmp_path):
    np.save(tmp_path / "a.npy", _image((8, 8)))
    assert _ome_io.ome_zarr_reader(str(tmp_path / "a.npy")) is None
    assert _ome_io.ome_zarr_reader(str(tmp_path / "missing.zarr")) is None
    assert _ome_io.ome_zarr_reader([str(tmp_path / "a.npy"), str(tmp_path / "b")]) is None


def test_reader_layer_data_makes_a_napari_layer_and_the_writer_saves_it(tmp_path):
    from napari.layers import Layer

    source = ome.write_ome_zarr(
        tmp_path / "in.ome.zarr", _image((2, 64, 64)), "CYX", (1.0, 0.5, 0.5), units="µm"
    )
    [(data, kwargs, kind)] = _ome_io.read_ome_zarr_layers(str(source))
    layer = Layer.create(data, kwargs, kind)
    assert layer.multiscale and tuple(layer.scale) == (1.0, 0.5, 0.5)
    written = _ome_io.write_ome_zarr_layer(
        str(tmp_path / "out.ome.zarr"), layer.data, layer._get_state()
    )
    array, axes, scale, units = ome.read_ome_zarr(written[0])
    assert (axes, scale) == ("CYX", (1.0, 0.5, 0.5))
    assert units == (None, "micrometer", "micrometer")
    np.testing.assert_array_equal(np.asarray(array), np.asarray(data[0]))


def test_napari_opens_and_saves_through_the_contributions(tmp_path):
    import napari
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()  # what napari does when it starts
    path = ome.write_ome_zarr(
        tmp_path / "cells.ome.zarr", _image((4, 64, 64)), "ZYX", (2.0, 0.5, 0.5), units="µm"
    )
    [layer] = ViewerModel().open(str(path), plugin="napari-selfdenoise")
    assert layer.multiscale and layer.source.reader_plugin == "napari-selfdenoise"
    assert tuple(layer.scale) == (2.0, 0.5, 0.5)
    assert [str(unit) for unit in layer.units] == ["micrometer"] * 3
    [saved] = napari.save_layers(str(tmp_path / "saved.ome.zarr"), [layer])  # by extension
    assert ome.read_ome_zarr(saved)[1:] == ("ZYX", (2.0, 0.5, 0.5), ("micrometer",) * 3)


def test_store_validates_against_the_ngff_0_5_models(tmp_path):
    import zarr
    from ome_zarr_models.v05.image import Image

    path = ome.write_ome_zarr(
        tmp_path / "v.ome.zarr", _image((2, 8, 64, 64)), "CZYX", (1, 2, 0.5, 0.5), units="µm"
    )
    image = Image.from_zarr(zarr.open_group(str(path), mode="r"))  # raises if not NGFF 0.5
    axes = image.attributes.ome.multiscales[0].axes
    assert [(a.name, a.type, a.unit) for a in axes] == [
        ("c", "channel", None),
        ("z", "space", "micrometer"),
        ("y", "space", "micrometer"),
        ("x", "space", "micrometer"),
    ]


def test_manifest_contributes_the_reader_and_writer():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(ROOT / "napari.yaml")
    readers = {r.command: r for r in manifest.contributions.readers}
    writers = {w.command: w for w in manifest.contributions.writers}
    reader = readers["napari-selfdenoise.ome_zarr_reader"]
    assert reader.accepts_directories and "*.zarr" in reader.filename_patterns
    assert writers["napari-selfdenoise.write_ome_zarr"].filename_extensions == [".ome.zarr"]
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    for command in (*readers, *writers):
        module, name = commands[command].split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))
    assert os.path.exists(ROOT / "src" / "selfdenoise" / "napari.yaml")
