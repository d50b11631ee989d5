"""Tiled prediction: equal to whole-image prediction, seamless, out-of-core, robust."""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import torch

from selfdenoise._errors import SelfDenoiseError
from selfdenoise.axes import Layout, to_canonical
from selfdenoise.config import NetworkConfig
from selfdenoise.nets import build_network, receptive_radius, size_multiple
from selfdenoise.tiling import (
    NetworkFactory,
    PredictionCancelled,
    TilePlan,
    choose_tiling,
    predict_dask,
    predict_tiled,
)
from selfdenoise.tiling._grid import reflect_indices, tile_axis

TOLERANCE = 1e-4


class AffineNormaliser:
    """Stand-in for :class:`selfdenoise.data.Normaliser`: per-sample affine map."""

    def forward(self, block, sample, out=None):
        result = (np.asarray(block, np.float32) - 10.0 * sample) / 3.0
        if out is None:
            return result
        out[...] = result
        return out

    def inverse(self, block, sample, out=None):
        result = np.asarray(block, np.float32) * 3.0 + 10.0 * sample
        if out is None:
            return result
        out[...] = result
        return out


def make_network(ndim, channels=1, depth=2, **options):
    torch.manual_seed(0)
    config = NetworkConfig(depth=depth, base_channels=4, **options)
    network = build_network(config, ndim, channels).eval()
    return network, size_multiple(config), receptive_radius(config, ndim)


@pytest.fixture(scope="module")
def net2d():
    return make_network(2)


@pytest.fixture(scope="module")
def net3d():
    return make_network(3, depth=1)


def whole_prediction(network, image, multiple):
    """Reference: the whole ``(C, *spatial)`` image at once, reflect-padded at the end."""
    spatial = image.shape[1:]
    padded = np.pad(image, [(0, 0)] + [(0, -s % multiple) for s in spatial], mode="reflect")
    with torch.inference_mode():
        output = network(torch.from_numpy(np.ascontiguousarray(padded))[None])[0].numpy()
    return output[(slice(None), *(slice(0, s) for s in spatial))]


def tiled(network, multiple, radius, image, axes="YX", **options):
    layout = Layout(axes, np.shape(image), options.pop("channels_jointly", True))
    return predict_tiled(
        network,
        image,
        layout,
        options.pop("normaliser", None),
        size_multiple=multiple,
        receptive_radius=radius,
        **options,
    )


def noise(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# --- geometry -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 5, 37, 64, 97, 131, 500])
@pytest.mark.parametrize(("tile", "halo", "multiple"), [(64, 23, 4), (20, 9, 2), (16, 0, 8)])
def test_tile_cores_partition_the_axis(size, tile, halo, multiple):
    axis = tile_axis(size, tile, halo, multiple)
    padded = -(-size // multiple) * multiple
    assert axis.cuts[0] == 0 and axis.cuts[-1] == size
    assert all(a < b for a, b in zip(axis.cuts, axis.cuts[1:], strict=False))
    assert all(o % multiple == 0 for o in axis.origins)
    assert axis.tile % multiple == 0 and axis.tile <= padded
    for k in range(len(axis)):
        core = axis.core_in_tile(k)
        inner_left, inner_right = k > 0, k < len(axis) - 1
        assert core.start >= (halo if inner_left else 0)
        assert core.stop <= axis.tile - (halo if inner_right else 0)


def test_reflect_indices_match_numpy_padding():
    for size in (1, 2, 3, 7):
        values = np.arange(size)
        padded = np.pad(values, (0, 11), mode="reflect")
        assert np.array_equal(values[reflect_indices(0, size + 11, size)], padded)


def test_hann_weights_add_up_to_one_between_two_tiles():
    axis = tile_axis(200, 64, 8, 4)
    total = np.zeros(200)
    for k in range(len(axis)):
        total[axis.span(k)] += axis.blend_weights(k)
    assert total.min() > 0.5
    inner = slice(axis.origins[1], axis.origins[-2] + axis.tile)
    np.testing.assert_allclose(total[inner][total[inner] < 1.5], 1.0, atol=1e-6)


# --- equal to whole-image prediction ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(131, 97), (37, 45), (64, 200)])
def test_tiled_equals_whole_image_2d(net2d, shape):
    network, multiple, radius = net2d
    image = noise(shape)
    expected = whole_prediction(network, image[None], multiple)[0]
    result = tiled(network, multiple, radius, image, tile_shape=(72, 72), batch_size=3)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=TOLERANCE)


def test_tiled_equals_whole_image_3d_anisotropic_tiles(net3d):
    network, multiple, radius = net3d
    image = noise((27, 41, 37))
    expected = whole_prediction(network, image[None], multiple)[0]
    result = tiled(network, multiple, radius, image, axes="ZYX", tile_shape=(20, 24, 32))
    np.testing.assert_allclose(result, expected, atol=TOLERANCE)


def test_large_slabs_are_written_tile_by_tile(net3d, monkeypatch):
    import selfdenoise.tiling._writer as writer

    monkeypatch.setattr(writer, "SLAB_BYTES", 0)
    network, multiple, radius = net3d
    image = noise((21, 30, 47))
    expected = whole_prediction(network, image[None], multiple)[0]
    result = tiled(network, multiple, radius, image, axes="ZYX", tile_shape=(20, 24, 24))
    np.testing.assert_allclose(result, expected, atol=TOLERANCE)


def test_tile_larger_than_image_and_tiny_images(net2d):
    network, multiple, radius = net2d
    for shape in [(5, 3), (1, 9), (30, 30)]:
        image = noise(shape)
        result = tiled(network, multiple, radius, image, tile_shape=(256, 256))
        np.testing.assert_allclose(
            result, whole_prediction(network, image[None], multiple)[0], atol=TOLERANCE
        )


@pytest.mark.parametrize("jointly", [True, False])
def test_leading_axes_channels_and_normaliser(jointly):
    network, multiple, radius = make_network(2, channels=2 if jointly else 1)
    image = noise((2, 70, 2, 50)) * 3.0 + 20.0  # T Y C X
    normaliser = AffineNormaliser()
    result = tiled(
        network,
        multiple,
        radius,
        image,
        "TYCX",
        normaliser=normaliser,
        channels_jointly=jointly,
        tile_shape=(52, 52),
    )
    canonical, layout = to_canonical(image, "TYCX", channels_jointly=jointly)
    for sample in range(layout.n_samples):
        normalised = normaliser.forward(canonical[sample], sample)
        expected = normaliser.inverse(whole_prediction(network, normalised, multiple), sample)
        got, _ = to_canonical(result, "TYCX", channels_jointly=jointly)
        np.testing.assert_allclose(got[sample], expected, atol=1e-3)


# --- seams, blending, TTA, precision -------------------------------------------------------


def border_gradient_ratio(output, cuts, multiple):
    """Mean |d/dx| across tile borders over its mean elsewhere (1 = no seam).

    Columns are compared with columns of the same phase modulo the network's size
    multiple: a U-Net's output statistics depend on the pooling phase.
    """
    gradient = np.abs(np.diff(output, axis=1)).mean(axis=0)
    borders = np.array(cuts[1:-1]) - 1
    phase = np.arange(gradient.size) % multiple
    elsewhere = np.ones(gradient.size, bool)
    elsewhere[borders] = False
    ratios = [gradient[b] / gradient[elsewhere & (phase == b % multiple)].mean() for b in borders]
    return float(np.mean(ratios))


@pytest.mark.parametrize(("blend", "overlap"), [("crop", None), ("hann", 8)])
def test_no_seams_on_noise(net2d, blend, overlap):
    network, multiple, radius = net2d
    image = noise((96, 400), seed=1)
    result = tiled(
        network, multiple, radius, image, tile_shape=(96, 96), overlap=overlap, blend=blend
    )
    cuts = tile_axis(400, 96, radius if overlap is None else overlap, multiple).cuts
    assert len(cuts) > 4
    assert border_gradient_ratio(result, cuts, multiple) < 1.1


def test_hann_with_full_overlap_is_close_to_whole(net2d):
    network, multiple, radius = net2d
    image = noise((131, 97))
    result = tiled(network, multiple, radius, image, tile_shape=(64, 64), blend="hann")
    expected = whole_prediction(network, image[None], multiple)[0]
    assert np.abs(result - expected).mean() < 0.01 * np.abs(expected).mean()


def test_hann_in_3d_is_close_to_whole(net3d):
    network, multiple, radius = net3d
    image = noise((26, 33, 40))
    result = tiled(network, multiple, radius, image, "ZYX", tile_shape=(20, 24, 28), blend="hann")
    expected = whole_prediction(network, image[None], multiple)[0]
    assert np.abs(result - expected).mean() < 0.02 * np.abs(expected).mean()


def dihedral_average(network, image, multiple):
    """Whole-image TTA of a ``(C, Y, X)`` image, reflect-padded once in its own frame."""
    spatial = image.shape[1:]
    padded = np.pad(image, [(0, 0)] + [(0, -s % multiple) for s in spatial], mode="reflect")
    total = 0
    for flip in (False, True):
        for turns in range(4):
            x = np.flip(padded, -1) if flip else padded
            x = np.ascontiguousarray(np.rot90(x, turns, (-2, -1)))
            y = np.rot90(whole_prediction(network, x, multiple), -turns, (-2, -1))
            total = total + (np.flip(y, -1) if flip else y)
    return (total / 8)[(slice(None), *(slice(0, s) for s in spatial))]


def test_tta_equals_whole_image_tta_with_non_square_tiles(net2d):
    network, multiple, radius = net2d
    image = noise((61, 90))
    result = tiled(network, multiple, radius, image, tile_shape=(56, 72), tta=True)
    np.testing.assert_allclose(
        result, dihedral_average(network, image[None], multiple)[0], atol=TOLERANCE
    )


def test_tta_in_3d_keeps_shape(net3d):
    network, multiple, radius = net3d
    image = noise((9, 22, 30))
    result = tiled(network, multiple, radius, image, axes="ZYX", tta=True)
    assert result.shape == image.shape and np.isfinite(result).all()


def test_half_precision_on_cpu(net2d):
    network, multiple, radius = net2d
    image = noise((40, 40))
    full = tiled(network, multiple, radius, image, half="off")
    np.testing.assert_array_equal(tiled(network, multiple, radius, image), full)  # auto: off
    bf16 = tiled(network, multiple, radius, image, half="bf16")
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - full).mean() < 0.05 * np.abs(full).mean()


# --- inputs and outputs -----------------------------------------------------------------------


def test_dask_zarr_and_tiff_sources_and_outputs(net2d, tmp_path):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    tifffile = pytest.importorskip("tifffile")
    network, multiple, radius = net2d
    image = (noise((3, 75, 66)) * 100 + 1000).astype(np.uint16)
    options = dict(axes="TYX", tile_shape=(64, 64), normaliser=AffineNormaliser())
    expected = tiled(network, multiple, radius, image, **options)

    as_dask = da.from_array(image, chunks=(1, 40, 40))
    np.testing.assert_array_equal(tiled(network, multiple, radius, as_dask, **options), expected)

    source = zarr.open_array(
        tmp_path / "in.zarr", mode="w", shape=image.shape, chunks=(1, 32, 32), dtype=image.dtype
    )
    source[:] = image
    out = zarr.open_array(
        tmp_path / "out.zarr", mode="w", shape=image.shape, chunks=(1, 32, 32), dtype="f4"
    )
    returned = tiled(network, multiple, radius, source, out=out, **options)
    assert returned is out
    np.testing.assert_array_equal(out[:], expected)

    tifffile.imwrite(tmp_path / "in.tif", image, photometric="minisblack")
    mapped = tifffile.memmap(tmp_path / "in.tif")
    target = tifffile.memmap(
        tmp_path / "out.tif", shape=image.shape, dtype=np.float32, photometric="minisblack"
    )
    tiled(network, multiple, radius, mapped, out=target, **options)
    target.flush()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)


def test_integer_output_is_rounded_and_clipped(net2d):
    network, multiple, radius = net2d
    image = noise((30, 30)) * 1000
    result = tiled(network, multiple, radius, image, out_dtype=np.uint8)
    expected = np.clip(np.rint(tiled(network, multiple, radius, image)), 0, 255)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


def test_shape_errors_are_one_line(net2d):
    network, multiple, radius = net2d
    with pytest.raises(SelfDenoiseError, match="output array") as info:
        tiled(network, multiple, radius, noise((20, 20)), out=np.zeros((20, 21), np.float32))
    assert "\n" not in str(info.value)
    with pytest.raises(SelfDenoiseError, match="blend"):
        tiled(network, multiple, radius, noise((20, 20)), blend="linear")


# --- dask ----------------------------------------------------------------------------------


def test_predict_dask_equals_predict_tiled_and_pickles(net2d):
    da = pytest.importorskip("dask.array")
    cloudpickle = pytest.importorskip("cloudpickle")
    network, multiple, radius = net2d
    image = noise((2, 96, 2, 100)) * 3 + 20  # T Y C X, channels as samples
    normaliser = AffineNormaliser()
    layout = Layout("TYCX", image.shape, channels_jointly=False)
    expected = predict_tiled(
        network, image, layout, normaliser, size_multiple=multiple, receptive_radius=radius
    )
    builder = functools.partial(build_network, NetworkConfig(depth=2, base_channels=4), 2, 1)
    factory = pickle.loads(
        pickle.dumps(
            NetworkFactory(
                builder, {k: v.numpy() for k, v in network.state_dict().items()}, multiple, radius
            )
        )
    )
    lazy = predict_dask(
        factory, da.from_array(image, chunks=(2, 48, 1, 52)), layout, normaliser, device="cpu"
    )
    assert lazy.shape == image.shape and lazy.dtype == np.float32
    lazy = cloudpickle.loads(cloudpickle.dumps(lazy))  # what a distributed scheduler ships
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), expected, atol=TOLERANCE)


@pytest.mark.slow
def test_predict_dask_on_a_local_cluster_builds_once_per_worker(net2d):
    """Issue 15: two worker processes, one thread each: equal to predict_tiled, and each
    worker builds the network at most once for all its chunks."""
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    from selfdenoise.tiling import network_builds

    network, multiple, radius = net2d
    image = noise((3, 100, 90))
    layout = Layout("SYX", image.shape)
    expected = predict_tiled(
        network, image, layout, size_multiple=multiple, receptive_radius=radius
    )
    builder = functools.partial(build_network, NetworkConfig(depth=2, base_channels=4), 2, 1)
    weights = {k: v.numpy() for k, v in network.state_dict().items()}
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        for _ in range(2):  # a second factory from the same weights reuses the built network
            factory = NetworkFactory(builder, weights, multiple, radius)
            lazy = predict_dask(
                factory, da.from_array(image, chunks=(1, 48, 48)), layout, device="cpu"
            )
            assert lazy.npartitions >= 6
            np.testing.assert_allclose(lazy.compute(), expected, atol=1e-5)
        builds = client.run(network_builds)
    assert len(builds) == 2 and all(count <= 1 for count in builds.values())
    assert sum(builds.values()) >= 1


def test_predict_dask_accepts_modules_and_denoiser_like_objects(net2d):
    da = pytest.importorskip("dask.array")
    network, multiple, radius = net2d
    image = noise((70, 90))
    expected = whole_prediction(network, image[None], multiple)[0]

    lazy = predict_dask(
        network, da.from_array(image, chunks=(32, 40)), "YX",
        size_multiple=multiple, receptive_radius=radius,
    )  # fmt: skip
    np.testing.assert_allclose(lazy.compute(scheduler="threads"), expected, atol=TOLERANCE)
    with pytest.raises(SelfDenoiseError, match="size_multiple"):
        predict_dask(network, da.from_array(image), "YX")

    class BoundNormaliser(AffineNormaliser):
        def bind(self, layout):
            return self

    class DenoiserLike:
        normaliser = BoundNormaliser()

        def network_factory(self):
            return NetworkFactory.from_module(network, multiple, radius)

        def prediction_layout(self, array, axes):
            return Layout(axes or "YX", array.shape)

    raw = image * 3.0  # sample 0: normalised = raw / 3
    lazy = predict_dask(DenoiserLike(), da.from_array(raw, chunks=(32, 40)))
    np.testing.assert_allclose(lazy.compute(scheduler="sync"), expected * 3.0, atol=1e-3)


# --- control: progress, cancel, out of memory -----------------------------------------------


class SharedLog(list):
    """A list that deep copies to itself: prediction runs on a private copy of the network,
    and the test reads what that copy recorded."""

    def __deepcopy__(self, memo):
        return self


class CountingNetwork(torch.nn.Module):
    """Wraps a network, records input shapes and fails like CUDA when inputs are too big."""

    def __init__(self, network, max_voxels=None):
        super().__init__()
        self.network = network
        self.max_voxels = max_voxels
        self.shapes = SharedLog()

    @property
    def calls(self):
        return len(self.shapes)

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        if self.max_voxels is not None and x.numel() > self.max_voxels:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.network(x)


def test_progress_and_cancel_within_one_batch(net2d):
    network, multiple, radius = net2d
    counting = CountingNetwork(network)
    reports = []
    stop = threading.Event()

    def progress(done, total, eta):
        reports.append((done, total, eta))
        if done >= 2:
            stop.set()

    image = noise((200, 200))
    with pytest.raises(PredictionCancelled):
        tiled(
            counting,
            multiple,
            radius,
            image,
            tile_shape=(64, 64),
            batch_size=2,
            progress=progress,
            cancel=stop,
        )
    tile_calls = [shape for shape in counting.shapes if shape[2:] == (64, 64)]
    assert len(tile_calls) == 1 and reports == [(2, reports[0][1], reports[0][2])]
    assert reports[0][1] > 2 and reports[0][2] >= 0

    reports.clear()
    tiled(network, multiple, radius, image, tile_shape=(64, 64), batch_size=4, progress=progress)
    done = [r[0] for r in reports]
    assert done == sorted(done) and done[-1] == reports[-1][1] and reports[-1][2] == 0
    with pytest.raises(PredictionCancelled):
        tiled(network, multiple, radius, image, cancel=lambda: True)


def test_out_of_memory_halves_batch_then_tile(net2d):
    network, multiple, radius = net2d
    image = noise((150, 150))
    expected = whole_prediction(network, image[None], multiple)[0]
    counting = CountingNetwork(network, max_voxels=80 * 80)
    messages = []
    with pytest.warns(RuntimeWarning, match="out of device memory"):
        result = tiled(
            counting,
            multiple,
            radius,
            image,
            tile_shape=(128, 128),
            batch_size=4,
            log=messages.append,
        )
    np.testing.assert_allclose(result, expected, atol=TOLERANCE)
    batches = [s[0] for s in counting.shapes]
    assert batches[:3] == [4, 2, 1]
    assert counting.shapes[-1][2:] == (64, 64)
    assert any("tile 128x128 -> 64x64" in m for m in messages)


def test_out_of_memory_at_smallest_tile_is_a_clear_error(net2d):
    network, multiple, radius = net2d
    counting = CountingNetwork(network, max_voxels=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SelfDenoiseError, match="out of device memory") as info:
            tiled(counting, multiple, radius, noise((150, 150)), tile_shape=(128, 128))
    assert "\n" not in str(info.value)


def test_network_mode_is_restored(net2d):
    network, multiple, radius = net2d
    network.train()
    try:
        tiled(network, multiple, radius, noise((20, 20)))
        assert network.training
    finally:
        network.eval()


# --- planning -------------------------------------------------------------------------------


def test_choose_tiling_defaults_and_overrides():
    plan = choose_tiling((4096, 4096), n_channels=1, receptive_radius=23, size_multiple=4)
    assert isinstance(plan, TilePlan) and plan.overlap == (23, 23)
    assert all(t % 4 == 0 and t > 2 * 23 for t in plan.tile_shape)
    assert plan.batch_size >= 1 and "tile" in plan.description

    small = choose_tiling((37, 45), n_channels=1, receptive_radius=23, size_multiple=4)
    assert small.tile_shape == (40, 48)

    custom = choose_tiling(
        (128, 1024, 1024),
        n_channels=1,
        receptive_radius=9,
        size_multiple=4,
        tile_shape=(30, 250, 250),
        overlap=(4, 16, 16),
        batch_size=2,
    )
    assert custom.tile_shape == (32, 252, 252)
    assert custom.overlap == (4, 16, 16) and custom.batch_size == 2
    grown = choose_tiling(
        (500, 500), n_channels=1, receptive_radius=23, size_multiple=4, tile_shape=(16, 16)
    )
    assert grown.tile_shape == (52, 52)  # room for a core after two halos
    with pytest.raises(SelfDenoiseError):
        choose_tiling((64, 64), n_channels=1, receptive_radius=4, size_multiple=4, overlap=(1,))


def test_choose_tiling_follows_free_gpu_memory(monkeypatch):
    import selfdenoise.device

    def plan_with(free):
        monkeypatch.setattr(selfdenoise.device, "free_memory_bytes", lambda device: free)
        return choose_tiling(
            (64, 2048, 2048), n_channels=1, receptive_radius=23, size_multiple=4, device="cuda"
        )

    small, large = plan_with(2 * 1024**3), plan_with(40 * 1024**3)
    small_voxels = np.prod(small.tile_shape) * small.batch_size
    assert small_voxels * 32 * 32 <= 1024**3
    assert np.prod(large.tile_shape) * large.batch_size > small_voxels


def test_planning_does_not_import_torch():
    code = "import sys, selfdenoise.tiling; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cancel_stops_a_one_tile_3d_denoise_within_two_seconds():
    """Issue 17: on a CPU the automatic plan predicts a 64x256x256 volume as one tile, yet
    progress moves within it and Cancel acts within 2 s (the pass stops at its next layer)."""
    from selfdenoise.tiling._cancel import FORWARD_THREADS

    FORWARD_THREADS.clear()  # idle threads kept from earlier predictions end first
    network, multiple, radius = make_network(3, depth=2)
    image = noise((64, 256, 256))
    stop = threading.Event()
    reports, stopped_at = [], []

    def progress(done, total, eta):
        reports.append((done, total))
        if not stop.is_set():
            stopped_at.append(time.perf_counter())
            stop.set()

    with pytest.raises(PredictionCancelled):
        tiled(network, multiple, radius, image, axes="ZYX", progress=progress, cancel=stop)
    latency = time.perf_counter() - stopped_at[0]
    assert latency < 2.0, f"cancel took {latency:.1f} s"
    assert reports[0][1] == 1 and 0 < reports[0][0] < 1  # one tile, reported partway
    forward = [t for t in threading.enumerate() if t.name.startswith("selfdenoise-forward")]
    for thread in forward:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in forward)
    assert FORWARD_THREADS.idle() == 0  # the abandoned pass's thread is not kept


class _ThreadRecorder(torch.nn.Module):
    """Identity network that records the thread of each forward pass (in a module global,
    which the prediction's private copy shares)."""

    def forward(self, x):
        FORWARD_THREADS_SEEN.append(threading.current_thread())
        return x


FORWARD_THREADS_SEEN: list[threading.Thread] = []


def test_successive_predictions_reuse_their_forward_thread():
    """cuDNN keeps its algorithm choices per thread: a new thread per prediction searched
    them again each time (seconds for large tiles on a GPU), so finished predictions hand
    their forward thread on to the next one."""
    from selfdenoise.tiling._cancel import FORWARD_THREADS

    FORWARD_THREADS.clear()
    FORWARD_THREADS_SEEN.clear()
    image = noise((64, 64))
    for _ in range(3):
        tiled(_ThreadRecorder(), 4, 0, image)
    first = FORWARD_THREADS_SEEN[0]
    assert len(FORWARD_THREADS_SEEN) == 3 and all(t is first for t in FORWARD_THREADS_SEEN)
    assert first is not threading.current_thread()  # still off the calling thread
    assert FORWARD_THREADS.idle() == 1


def test_split_tiles_need_a_halo_on_inner_sides_only(monkeypatch):
    """End tiles see the image border, so two tiles cover 256 voxels with a halo of 29 at a
    side of 160 (not 128 + 2 * 60); the planner finds such tiles and computes less."""
    import selfdenoise.device
    from selfdenoise.tiling._plan import _axis_options

    assert _axis_options(256, 29, 4)[160] == 2
    monkeypatch.setattr(selfdenoise.device, "free_memory_bytes", lambda device: 64 * 1024**3)
    shape = (64, 512, 512)
    plan = choose_tiling(
        shape, n_channels=1, receptive_radius=29, size_multiple=4, base_channels=24
    )
    tiles = np.prod(
        [
            len(tile_axis(s, t, h, 4))
            for s, t, h in zip(shape, plan.tile_shape, plan.overlap, strict=True)
        ]
    )
    assert tiles * np.prod(plan.tile_shape) / np.prod(shape) < 1.3  # was 1.59


# --- host side: reading in one pass, bands on several threads --------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 37])
def test_read_tile_into_equals_reflect_padding(size):
    """Tiles past the image end are filled with reversed runs of the block, in one pass."""
    from selfdenoise.tiling._grid import read_tile

    image = np.arange(size * 7, dtype=np.uint16).reshape(size, 7)
    layout = Layout("YX", image.shape)
    padded = np.pad(image, [(0, 64), (0, 64)], mode="reflect")
    for origins in [(0, 0), (0, 3), (size - 1, 5)]:
        tile = read_tile(image, layout, 0, origins, (16, 12))
        assert tile.dtype == np.float32 and tile.shape == (1, 16, 12)
        expected = padded[origins[0] : origins[0] + 16, origins[1] : origins[1] + 12]
        np.testing.assert_array_equal(tile[0], expected)


@pytest.mark.parametrize(("axes", "shape"), [("YX", (300, 260)), ("TZYX", (2, 20, 40, 44))])
def test_bands_on_host_threads_give_the_same_prediction(monkeypatch, axes, shape):
    """Large tiles of in-memory images are read, normalised, restored and stored in bands
    of rows on several threads; the result is identical to one band."""
    from selfdenoise.tiling import _parallel

    ndim = len(axes.replace("T", ""))
    network, multiple, radius = make_network(ndim)
    image = noise(shape) * 3.0 + 20.0
    options = dict(axes=axes, normaliser=AffineNormaliser(), tile_shape=(64,) * ndim)
    one_band = tiled(network, multiple, radius, image, **options)
    monkeypatch.setattr(_parallel, "BAND_VOXELS", 64)  # many bands even for small tiles
    monkeypatch.setattr(_parallel, "HOST_THREADS", 3)
    assert len(_parallel.bands((64,) * ndim)) == 3
    banded = tiled(network, multiple, radius, image, **options)
    np.testing.assert_array_equal(banded, one_band)


def test_bands_cover_the_rows_once():
    from selfdenoise.tiling._parallel import bands

    for rows, threads in [(1, 8), (7, 3), (1000, 8), (64, 64)]:
        parts = bands((rows, 2**21), threads)
        assert len(parts) == min(rows, threads)
        covered = np.concatenate([np.arange(rows)[part] for part in parts])
        np.testing.assert_array_equal(covered, np.arange(rows))
    assert bands((512, 512)) == [slice(0, 512)]  # small blocks: one band
