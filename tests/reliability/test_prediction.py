"""Trust matrix, prediction rows (issue 11): one case per row, each asserting a one-line
error, unchanged weights or an unchanged input."""

from __future__ import annotations

import hashlib
import threading
import warnings

import numpy as np
import pytest
import torch

from selfdenoise._errors import SelfDenoiseError
from selfdenoise.api import Denoiser
from selfdenoise.axes import Layout
from selfdenoise.config import NetworkConfig
from selfdenoise.nets import build_network, receptive_radius, size_multiple
from selfdenoise.tiling import predict_dask, predict_tiled

FAST = {"base_channels": 4, "depth": 2, "batch_size": 2, "patch_shape": (32, 32), "device": "cpu"}


def weights_digest(network: torch.nn.Module) -> str:
    """Bit-exact fingerprint of a module's weights, their strides, and its mode."""
    digest = hashlib.sha256(str(network.training).encode())
    for name, value in network.state_dict().items():
        digest.update(name.encode() + str(value.stride()).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def array_digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()


def small_network(ndim=2):
    torch.manual_seed(0)
    config = NetworkConfig(depth=2, base_channels=4)
    return build_network(config, ndim, 1), size_multiple(config), receptive_radius(config, ndim)


def noisy(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def one_line_error(info) -> str:
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, SelfDenoiseError)
    return message


# --- row 1: thread-safe prediction ------------------------------------------------------


def module_state(network: torch.nn.Module) -> tuple:
    """What a prediction must never change, cheap enough to sample in a loop."""
    return network.training, tuple(p.stride() for p in network.parameters())


def concurrent_predict():
    """Two threads predict with one trained model at once: same outputs as one thread, the
    module's mode and weight layout never change while they run (sampled by a watcher),
    and the weights are bit-identical afterwards."""
    image = noisy((64, 56))
    model = Denoiser("n2v", steps=2, steps_per_epoch=2, seed=0, **FAST)
    model.fit(image)
    model.network.train()  # a mode prediction must neither need nor change
    before, state = weights_digest(model.network), module_state(model.network)
    expected = model.predict(image, tile_shape=(48, 48))
    failures: list[str] = []

    def worker() -> None:
        for _ in range(4):
            result = model.predict(image, tile_shape=(48, 48))
            if not np.array_equal(result, expected):
                failures.append(f"max difference {np.abs(result - expected).max()}")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if module_state(model.network) != state:
            failures.append("the module's mode or memory format changed during prediction")
            break
    for thread in threads:
        thread.join()
    assert failures == []
    assert weights_digest(model.network) == before and model.network.training


def predict_while_training():
    """Predictions while another thread trains the same module never flip it to eval mode,
    change its memory format or touch its weights between the trainer's own steps."""
    network, multiple, radius = small_network()
    network.train()
    optimiser = torch.optim.SGD(network.parameters(), lr=1e-3)
    image = noisy((64, 64))
    layout = Layout("YX", image.shape)
    stop = threading.Event()
    problems: list[str] = []

    def train() -> None:
        x = torch.from_numpy(noisy((2, 1, 32, 32), seed=1))
        while not stop.is_set():
            before = weights_digest(network)
            if not network.training:
                problems.append("module switched to eval mode")
            loss = network(x).square().mean()
            optimiser.zero_grad()
            loss.backward()
            if weights_digest(network) != before:
                problems.append("weights changed outside the trainer's step")
            optimiser.step()

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        for _ in range(8):
            predict_tiled(network, image, layout, size_multiple=multiple, receptive_radius=radius)
    finally:
        stop.set()
        trainer.join()
    assert problems == [] and network.training
    assert all(p.is_contiguous() for p in network.parameters())


# --- row 6: NaN/Inf in lazy input -----------------------------------------------------------


def nan_in_zarr():
    import zarr

    image = noisy((80, 72))
    image[50, 7] = np.nan
    source = zarr.array(image, chunks=(32, 32))
    digest = array_digest(source[:])
    network, multiple, radius = small_network()
    with pytest.raises(SelfDenoiseError) as info:
        predict_tiled(
            network,
            source,
            Layout("YX", image.shape),
            size_multiple=multiple,
            receptive_radius=radius,
            tile_shape=(48, 48),
        )
    message = one_line_error(info)
    assert "NaN" in message and "nan_to_num" in message
    assert array_digest(source[:]) == digest


def nan_in_dask():
    import dask.array as da

    image = noisy((80, 72))
    image[3, 60] = np.inf
    digest = array_digest(image)
    network, multiple, radius = small_network()
    lazy = predict_dask(
        network,
        da.from_array(image, chunks=(40, 36)),
        "YX",
        size_multiple=multiple,
        receptive_radius=radius,
        device="cpu",
    )
    with pytest.raises(SelfDenoiseError) as info:
        lazy.compute(scheduler="sync")
    message = one_line_error(info)
    assert "NaN or infinite" in message and "nan_to_num" in message
    assert array_digest(image) == digest


# --- row 13: overlap below the receptive radius -----------------------------------------------


def thin_overlap_warns():
    network, multiple, radius = small_network()
    image = noisy((120, 120))
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predict_tiled(
            network,
            image,
            Layout("YX", image.shape),
            size_multiple=multiple,
            receptive_radius=radius,
            tile_shape=(48, 48),
            overlap=4,
            log=messages.append,
        )
    seams = [w for w in caught if "seams" in str(w.message)]
    assert len(messages) == 1 and len(seams) == 1 and seams[0].category is RuntimeWarning
    assert "\n" not in messages[0] and f"at least {radius}" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough overlap, or hann blending: no warning
        for options in ({"overlap": radius}, {"overlap": 4, "blend": "hann"}):
            predict_tiled(
                network,
                image,
                Layout("YX", image.shape),
                size_multiple=multiple,
                receptive_radius=radius,
                tile_shape=(48, 48),
                **options,
            )


def output_onto_its_input():
    """``predict(image, out=image)`` (or a view of it) is a one-line error and leaves the
    image as it was: written tile by tile, later tiles would read earlier tiles' output."""
    image = noisy((64, 64))
    model = Denoiser("n2v2", steps=2, steps_per_epoch=2, seed=0, **FAST)
    model.fit(image)
    before = array_digest(image)
    for out in (image, image[:], image.reshape(64, 64)):
        with pytest.raises(SelfDenoiseError) as info:
            model.predict(image, out=out, tile_shape=(32, 32))
        assert "shares its memory" in one_line_error(info)
        assert array_digest(image) == before
    separate = np.zeros_like(image)  # a separate array still works
    model.predict(image, out=separate, tile_shape=(32, 32))
    assert np.allclose(separate, model.predict(image, tile_shape=(32, 32)), atol=1e-5)


ROWS = {
    "row01-concurrent-predict": concurrent_predict,
    "row02-output-onto-its-input": output_onto_its_input,
    "row01-predict-while-training": predict_while_training,
    "row06-nan-zarr": nan_in_zarr,
    "row06-nan-dask": nan_in_dask,
    "row13-thin-overlap": thin_overlap_warns,
}


@pytest.mark.parametrize("case", list(ROWS.values()), ids=list(ROWS))
def test_prediction_row(case, torch_single_thread):
    case()
