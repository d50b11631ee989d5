"""Issue 11, engine rows: each case reproduces a defect found by hand and asserts the fix.

Every error case asserts a one-line :class:`SelfDenoiseError`.
"""

from __future__ import annotations

import json
import threading
import time
import warnings

import numpy as np
import pytest

from selfdenoise import Denoiser, SelfDenoiseError

TINY = {"base_channels": 8, "depth": 2, "batch_size": 2, "patch_shape": (16, 16), "device": "cpu"}
TINY_3D = {**TINY, "patch_shape": (8, 16, 16)}


def _image(shape, seed=0):
    return np.random.default_rng(seed).normal(0.5, 0.1, shape).astype(np.float32)


def _one_line_error(call, fragment: str) -> str:
    with pytest.raises(SelfDenoiseError, match=fragment) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


def _weights(model) -> dict:
    return {k: v.detach().clone().contiguous() for k, v in model.network.state_dict().items()}


def _same_weights(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


# ---------------------------------------------------------------- row 3: validation images
@pytest.mark.parametrize(
    ("axes", "shape", "settings"),
    [("YX", (32, 32), TINY), ("ZYX", (8, 24, 24), TINY_3D), ("SYX", (2, 32, 32), TINY)],
    ids=["row03-validation-YX", "row03-validation-ZYX", "row03-validation-SYX"],
)
def test_row03_a_validation_image_is_used(axes, shape, settings, torch_single_thread):
    model = Denoiser("n2v", axes, steps=2, steps_per_epoch=2, **settings)
    history = model.fit(_image(shape), validation=_image(shape, seed=1))
    assert history and history[-1]["step"] == 2 and np.isfinite(history[-1]["val_loss"])


# ---------------------------------------------------------------- row 4: interrupts keep the best
def _record_best(model, snapshots):
    def callback(progress):
        if progress.validated:
            snapshots[progress.step] = _weights(model)

    return callback


@pytest.mark.parametrize(
    "how", ["keyboard", "stop", "cancel"], ids=["row04-ctrl-c", "row04-stop", "row04-cancel"]
)
def test_row04_an_interrupt_leaves_the_best_weights(how, torch_single_thread):
    model = Denoiser("n2v", steps=1000, steps_per_epoch=2, seed=0, **TINY)
    snapshots: dict[int, dict] = {}
    record = _record_best(model, snapshots)
    event = threading.Event()

    def callback(progress):
        record(progress)
        if progress.step == 5:
            if how == "keyboard":
                raise KeyboardInterrupt
            model.stop() if how == "stop" else event.set()

    if how == "keyboard":
        with pytest.raises(KeyboardInterrupt):
            model.fit(_image((32, 32)), callback=callback)
    else:
        model.fit(_image((32, 32)), callback=callback, cancel=event)
    assert model.steps_trained == 5
    best = min(model.history, key=lambda row: row["val_loss"])
    assert best["step"] in snapshots
    assert _same_weights(_weights(model), snapshots[best["step"]])
    assert not model.network.training


# ---------------------------------------------------------------- row 7: model files are checked
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    model = Denoiser("n2v", steps=1, steps_per_epoch=1, **TINY)
    model.fit(_image((32, 32)))
    return model


def _tampered(model, path, change):
    from selfdenoise.io import save_bundle

    metadata = json.loads(json.dumps(model._metadata()))
    change(metadata)
    return save_bundle(path, model.network.state_dict(), metadata)


def _set(*keys, value):
    def change(metadata):
        target = metadata
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


ROW07_CASES = {
    "row07-scale-zero": (_set("normaliser", "scale", value=[0.0]), "scales must be > 0"),
    "row07-scale-nan": (_set("normaliser", "scale", value=[float("nan")]), "finite"),
    "row07-offset-inf": (_set("normaliser", "offset", value=[float("inf")]), "finite"),
    "row07-normaliser-entries": (
        _set("normaliser", "offset", value=[0.0, 1.0]),
        "offset\\(s\\) but",
    ),
    "row07-normaliser-channels": (
        lambda m: m["normaliser"].update(offset=[0.0, 0.0], scale=[1.0, 1.0]),
        "2 entries for 1 channel",
    ),
    "row07-in-channels-negative": (_set("in_channels", value=-3), "in_channels"),
    "row07-in-channels-text": (_set("in_channels", value="1"), "in_channels"),
    "row07-config-list": (_set("config", value=[1, 2]), "must be a dictionary"),
    "row07-section-list": (_set("config", "network", value=[1]), "must be a dictionary"),
    "row07-depth-text": (_set("config", "network", "depth", value="x"), "integer"),
    "row07-base-channels-huge": (
        _set("config", "network", "base_channels", value=1_000_000),
        "base_channels must be between",
    ),
    "row07-parameter-limit": (
        lambda m: m["config"]["network"].update(base_channels=256, depth=6),
        "parameters \\(limit",
    ),
    "row07-history-not-list": (_set("history", value={"step": 1}), "list of records"),
    "row07-history-rows": (_set("history", value=[1, 2]), "list of records"),
    "row07-lambda-inv-nan": (_set("lambda_inv", value=float("nan")), "lambda_inv"),
    "row07-lambda-inv-negative": (_set("lambda_inv", value=-1.0), "lambda_inv"),
    "row07-config-lambda-text": (_set("config", "lambda_inv", value="x"), "lambda_inv"),
    "row07-config-regulariser-nan": (
        _set("config", "regulariser_weight", value=float("nan")),
        "regulariser_weight must be a finite number",
    ),
    "row07-config-regulariser-negative": (
        _set("config", "regulariser_weight", value=-2.0),
        "regulariser_weight must be >= 0",
    ),
    "row07-missing-normaliser": (lambda m: m.pop("normaliser"), "missing 'normaliser'"),
}


@pytest.mark.parametrize(("change", "fragment"), list(ROW07_CASES.values()), ids=list(ROW07_CASES))
def test_row07_every_model_file_field_is_checked(saved_model, tmp_path, change, fragment):
    path = _tampered(saved_model, tmp_path / "model.safetensors", change)
    started = time.perf_counter()
    _one_line_error(lambda: Denoiser.load(path), fragment)
    assert time.perf_counter() - started < 10  # refused before allocating anything


def test_row07_new_configs_bound_base_channels():
    _one_line_error(lambda: Denoiser("n2v", base_channels=100_000), "base_channels")


# ---------------------------------------------------------------- row 8: zero steps, idle stop
@pytest.mark.parametrize(
    "settings",
    [{"cancel": lambda: True}, {"max_minutes": 1e-9}],
    ids=["row08-cancel-before-first-step", "row08-tiny-time-budget"],
)
def test_row08_a_model_with_zero_steps_is_not_trained(settings, tmp_path, torch_single_thread):
    cancel = settings.get("cancel")
    budget = {"max_minutes": settings["max_minutes"]} if "max_minutes" in settings else {}
    model = Denoiser("n2v", steps_per_epoch=2, **budget, **TINY)
    model.fit(_image((32, 32)), cancel=cancel)
    assert model.steps_trained == 0 and not model.is_trained
    _one_line_error(lambda: model.save(tmp_path / "model"), "not been trained")
    assert not list(tmp_path.iterdir())


def test_row08_an_idle_stop_is_not_remembered(torch_single_thread):
    model = Denoiser("n2v", steps=3, steps_per_epoch=3, **TINY)
    model.stop()
    records = list(model.fit_iter(_image((32, 32))))
    assert records[-1].stop_reason == "budget" and model.steps_trained == 3
    assert model.is_trained


# ---------------------------------------------------------------- row 10: stop within 2 s
@pytest.mark.parametrize(
    ("axes", "shape", "settings", "steps_per_epoch"),
    [
        ("YX", (64, 64), {**TINY, "base_channels": 32, "patch_shape": (32, 32)}, 1000),
        ("ZYX", (16, 48, 48), {**TINY, "base_channels": 32, "patch_shape": (8, 32, 32)}, 1000),
        ("ZYX", (16, 48, 48), {**TINY, "base_channels": 32, "patch_shape": (8, 32, 32)}, 2),
    ],
    ids=["row10-stop-2d", "row10-stop-3d-before-validation", "row10-stop-3d-after-validation"],
)
def test_row10_stop_returns_within_two_seconds(
    axes, shape, settings, steps_per_epoch, torch_single_thread
):
    model = Denoiser("n2v", axes, steps=1000, steps_per_epoch=steps_per_epoch, **settings)
    stopped_at = None
    for progress in model.fit_iter(_image(shape)):
        if progress.step == 3 and stopped_at is None:
            stopped_at = time.perf_counter()
            model.stop()
    assert progress.done and progress.stop_reason == "cancelled"
    assert time.perf_counter() - stopped_at < 2.0
    assert model.history and model.steps_trained == 3


# ---------------------------------------------------------------- row 12: divergence, resume
def test_row12_divergence_is_a_one_line_error_and_keeps_a_model(torch_single_thread):
    model = Denoiser("n2v", steps=50, steps_per_epoch=1, learning_rate=1e6, **TINY)
    message = _one_line_error(lambda: model.fit(_image((32, 32))), "diverged at step")
    assert "lower the learning rate" in message
    assert model.steps_trained == int(message.split("step ")[1].split()[0]) - 1
    assert all(np.isfinite(v.numpy()).all() for v in _weights(model).values())


def _poison_gradients(monkeypatch, bad_steps) -> None:
    """Make Noise2Void's loss keep its finite value but give NaN gradients on ``bad_steps``
    (1-based calls): what a faulty bf16 convolution backward does on some CPUs."""
    import torch

    from selfdenoise.methods.noise2void import Noise2Void

    original, calls = Noise2Void.training_loss, [0]

    def training_loss(self, network, batch, generator):
        loss, logs = original(self, network, batch, generator)
        calls[0] += 1
        if calls[0] in bad_steps:
            probe = network(batch).float().mean()
            loss = loss + 0.0 * torch.sqrt(probe - probe.detach())  # value 0, gradient NaN
        return loss, logs

    monkeypatch.setattr(Noise2Void, "training_loss", training_loss)


def test_row12_a_bf16_step_with_nan_gradients_is_skipped(monkeypatch, torch_single_thread):
    _poison_gradients(monkeypatch, {2})
    model = Denoiser("n2v", steps=6, steps_per_epoch=3, amp="bf16", **TINY)
    messages = [p.message for p in model.fit_iter(_image((32, 32))) if p.message]
    assert model.steps_trained == 6
    assert all(np.isfinite(v.float().numpy()).all() for v in _weights(model).values())
    assert any("step 2 was skipped" in m for m in messages)


def test_row12_nan_gradients_in_a_row_are_divergence(monkeypatch, torch_single_thread):
    _poison_gradients(monkeypatch, set(range(3, 100)))
    model = Denoiser("n2v", steps=60, steps_per_epoch=50, amp="bf16", **TINY)
    message = _one_line_error(lambda: model.fit(_image((32, 32))), "diverged at step 3")
    assert "gradients not finite" in message
    assert model.steps_trained == 2
    assert all(np.isfinite(v.float().numpy()).all() for v in _weights(model).values())


def test_row12_in_float32_nan_gradients_still_end_the_run(monkeypatch, torch_single_thread):
    """The guard is for bf16 on the CPU only; in float32 a NaN gradient still ends the run."""
    _poison_gradients(monkeypatch, {2})
    model = Denoiser("n2v", steps=6, steps_per_epoch=3, amp="off", **TINY)
    _one_line_error(lambda: model.fit(_image((32, 32))), "loss is not finite")


@pytest.fixture(scope="module")
def n2v_checkpoint(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("checkpoint")
    model = Denoiser(
        "n2v", steps=2, steps_per_epoch=2, checkpoint_every=2, checkpoint_dir=str(folder), **TINY
    )
    model.fit(_image((32, 32)))
    return folder / "checkpoint.pt"


@pytest.mark.parametrize(
    ("method", "axes", "data", "fragment"),
    [
        ("noise2same", "YX", _image((32, 32)), "method 'n2v'"),
        ("n2v", "SYX", _image((2, 32, 32)), "axes 'YX'"),
    ],
    ids=["row12-resume-other-method", "row12-resume-other-axes"],
)
def test_row12_resume_refuses_another_method_or_axes(n2v_checkpoint, method, axes, data, fragment):
    model = Denoiser(method, axes, steps=4, steps_per_epoch=2, **TINY)
    _one_line_error(lambda: model.fit(data, resume=n2v_checkpoint), fragment)


# ---------------------------------------------------------------- row 13: silent surprises
def test_row13_channels_are_normalised_with_their_own_statistics(torch_single_thread):
    import torch

    data = _image((2, 32, 32))
    data[1] = data[1] * 100 + 500
    model = Denoiser("n2v", "CYX", channels_jointly=False, steps=1, steps_per_epoch=1, **TINY)
    model.fit(data)
    np.testing.assert_allclose(model.normaliser.offset, data.mean(axis=(1, 2)), rtol=1e-4)
    model.network = torch.nn.Identity()
    model.network.size_multiple, model.network.receptive_radius = 4, 0
    network_alone = model.predict(data, restore_detail=False, collaborative_filter=False)
    np.testing.assert_allclose(network_alone, data, rtol=1e-5, atol=1e-3)


def test_row13_checkpoint_every_needs_a_folder():
    _one_line_error(lambda: Denoiser("n2v", checkpoint_every=5), "checkpoint_dir")


def test_row13_a_checkpoint_write_error_does_not_stop_training(tmp_path, torch_single_thread):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = Denoiser(
        "n2v",
        steps=4,
        steps_per_epoch=2,
        checkpoint_every=1,
        checkpoint_dir=str(blocker / "sub"),
        **TINY,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(model.fit_iter(_image((32, 32))))
    assert records[-1].stop_reason == "budget" and model.steps_trained == 4
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    messages = [r.message for r in records if r.message]
    assert len(messages) == 1 and "checkpoint" in messages[0] and "\n" not in messages[0]


# ---------------------------------------------------------------- row 14: device is a preference
def test_row14_a_gpu_trained_model_loads_anywhere(saved_model, tmp_path):
    path = _tampered(
        saved_model,
        tmp_path / "gpu.safetensors",
        _set("config", "training", "device", value="cuda"),
    )
    loaded = Denoiser.load(path)
    image = _image((32, 32))
    assert loaded.predict(image).shape == image.shape
    assert loaded.to("cpu") is loaded and loaded.device.type == "cpu"
    assert next(loaded.network.parameters()).device.type == "cpu"
