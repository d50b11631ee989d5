"""The Denoiser contract: fit, predict, save/load, stop, resume, reproducibility, errors."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from _synthetic import psnr, synthetic_2d, synthetic_3d
from selfdenoise import Denoiser, SelfDenoiseError


@pytest.fixture
def image_2d():
    return synthetic_2d()


@pytest.fixture
def image_3d():
    return synthetic_3d()


FAST = {"base_channels": 8, "depth": 2, "batch_size": 4, "patch_shape": (32, 32), "device": "cpu"}


def test_importing_the_package_and_front_ends_does_not_import_torch():
    code = (
        "import sys\n"
        "import selfdenoise, selfdenoise.api, selfdenoise.config, selfdenoise.axes, selfdenoise.data\n"
        "import selfdenoise.patches\n"
        "import selfdenoise.cli, selfdenoise.io, selfdenoise.metrics, selfdenoise.samples, selfdenoise.demo\n"
        "from selfdenoise import Denoiser\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_same_seed_same_model_on_cpu(image_2d):
    noisy, _ = image_2d
    outputs = []
    for _ in range(2):
        model = Denoiser("n2v", steps=6, steps_per_epoch=3, seed=3, **FAST)
        model.fit(noisy)
        outputs.append(model.predict(noisy))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_save_load_predicts_bit_identically(tmp_path, image_2d):
    noisy, _ = image_2d
    model = Denoiser("noise2same", steps=4, steps_per_epoch=2, **FAST)
    history = model.fit(noisy)
    path = model.save(tmp_path / "model")
    assert path.suffix == ".safetensors"
    loaded = Denoiser.load(path)
    assert loaded.config == model.config and loaded.history == history
    np.testing.assert_array_equal(loaded.predict(noisy), model.predict(noisy))


def test_corrupt_or_foreign_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(SelfDenoiseError) as info:
        Denoiser.load(bad)
    assert "\n" not in str(info.value)


def test_stop_from_another_thread_keeps_a_usable_model(image_2d):
    noisy, _ = image_2d
    model = Denoiser("n2v2", steps=100_000, steps_per_epoch=5, **FAST)
    seen = []

    def callback(progress):
        seen.append(progress)
        if progress.step == 12:
            threading.Thread(target=model.stop).start()

    model.fit(noisy, callback=callback)
    assert seen[-1].done and seen[-1].stop_reason == "cancelled"
    assert seen[-1].step < 20
    assert model.predict(noisy).shape == noisy.shape


def test_resume_from_checkpoint_continues_the_same_run(tmp_path, image_2d):
    noisy, _ = image_2d
    settings = dict(FAST, steps=8, steps_per_epoch=4, seed=1)
    straight = Denoiser("n2v", **settings)
    straight.fit(noisy)

    interrupted = Denoiser("n2v", checkpoint_every=4, checkpoint_dir=str(tmp_path), **settings)
    interrupted.fit(noisy, callback=lambda p: p.step == 5 and interrupted.stop())
    resumed = Denoiser("n2v", **settings)
    resumed.fit(noisy, resume=tmp_path / "checkpoint.pt")
    assert resumed.history[-1]["step"] == 8
    np.testing.assert_allclose(resumed.predict(noisy), straight.predict(noisy), atol=1e-5)


def test_progress_records_carry_what_a_gui_needs(image_2d):
    noisy, _ = image_2d
    model = Denoiser("noise2self", steps=6, steps_per_epoch=3, **FAST)
    records = list(model.fit_iter(noisy))
    assert [r.step for r in records[:-1]] == list(range(1, 7))
    assert records[-1].done
    validated = [r for r in records if r.validated]
    assert len(validated) == 2 and all(r.val_loss > 0 for r in validated)
    for name in (
        "epoch",
        "loss",
        "learning_rate",
        "steps_per_second",
        "eta_seconds",
        "total_steps",
    ):
        assert hasattr(records[2], name)


@pytest.mark.parametrize(
    ("axes", "shape"), [("TYX", (3, 40, 40)), ("CYX", (2, 40, 40)), ("YXC", (40, 40, 3))]
)
def test_sample_and_channel_axes(axes, shape):
    rng = np.random.default_rng(0)
    data = rng.random(shape).astype(np.float32)
    model = Denoiser("n2v", axes, steps=2, steps_per_epoch=2, **FAST)
    model.fit(data)
    assert model.predict(data).shape == shape


def test_independent_channels_share_one_single_channel_network():
    data = np.random.default_rng(0).random((2, 40, 40)).astype(np.float32)
    data[1] *= 100
    model = Denoiser("n2v", "CYX", channels_jointly=False, steps=2, steps_per_epoch=2, **FAST)
    model.fit(data)
    assert model.in_channels == 1
    out = model.predict(data)
    assert out[1].mean() > 10 * out[0].mean()


def test_3d_model_and_2d_model_on_a_stack(image_3d):
    noisy, _ = image_3d
    model3d = Denoiser(
        "noise2same", "ZYX", steps=2, steps_per_epoch=2, **{**FAST, "patch_shape": (8, 16, 16)}
    )
    model3d.fit(noisy)
    assert model3d.predict(noisy).shape == noisy.shape
    model2d = Denoiser("n2v", steps=2, steps_per_epoch=2, **FAST)
    model2d.fit(noisy[0])
    assert model2d.predict(noisy, axes="ZYX").shape == noisy.shape


def test_output_dtype_on_request():
    data = (np.random.default_rng(0).random((40, 40)) * 1000).astype(np.uint16)
    model = Denoiser("n2v", steps=2, steps_per_epoch=2, **FAST)
    model.fit(data)
    assert model.predict(data).dtype == np.float32
    assert model.predict(data, dtype="input").dtype == np.uint16


def test_bad_input_errors_are_one_line(image_2d):
    noisy, _ = image_2d
    model = Denoiser("n2v", steps=2, steps_per_epoch=2, **FAST)
    with pytest.raises(SelfDenoiseError, match="not trained"):
        model.predict(noisy)
    broken = noisy.copy()
    broken[4, 4] = np.nan
    cases = [
        (broken, "NaN"),
        (noisy[None], "3 dimensions"),
        (noisy[:6, :6], "too small"),
        (noisy > 0, "data type bool"),
    ]
    for data, fragment in cases:
        with pytest.raises(SelfDenoiseError, match=fragment) as info:
            model.fit(data)
        assert "\n" not in str(info.value)
    with pytest.raises(SelfDenoiseError, match="too small for the patch"):
        Denoiser("n2v", **{**FAST, "patch_shape": (64, 64)}).fit(noisy[:40, :40])
    model.fit(noisy)
    with pytest.raises(SelfDenoiseError, match="has 3 letters but the image has 2"):
        Denoiser("n2v", "ZYX", steps=1, **{**FAST, "patch_shape": (8, 16, 16)}).fit(noisy)
    with pytest.raises(SelfDenoiseError, match="model takes 1 channel"):
        model.predict(np.stack([noisy, noisy]), axes="CYX")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "steps", "gain"),
    [("noise2same", 100, 4.0), ("n2v", 100, 3.0), ("n2v2", 100, 3.0), ("noise2self", 100, 3.0)],
)
def test_each_method_raises_psnr(method, steps, gain):
    """A step budget, not a time budget: 100 steps give 9-10 dB on this image (measured:
    noise2same 9.0, n2v 9.2, n2v2 10.0, noise2self 9.7), well above the required gains."""
    noisy, clean = synthetic_2d(seed=4)
    model = Denoiser(
        method,
        steps=steps,
        steps_per_epoch=50,
        seed=0,
        device="cpu",
        base_channels=16,
        depth=2,
        batch_size=8,
        patch_shape=(32, 32),
    )
    model.fit(noisy)
    before = psnr(clean, noisy)
    after = psnr(clean, model.predict(noisy))
    assert after - before >= gain, f"{method}: {before:.2f} -> {after:.2f} dB"
