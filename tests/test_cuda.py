"""Every GPU path on a real CUDA device: training, AMP, tiled prediction, OOM fallback, files, DDP.

All tests carry the ``cuda`` marker and skip cleanly where ``torch.cuda.is_available()`` is
False (CI, the CPU development machine). On a GPU machine run them with
``pytest -m cuda tests/test_cuda.py`` or ``scripts/gpu-check.sh``; budgets are a few steps, so
the file takes well under two minutes on an H100.

Comparisons between two GPU results (or a GPU and a CPU result) use :func:`assert_close`: the
mean absolute difference within 1e-3 and the largest within 1e-2 of the image's intensity
range. bf16 keeps 8 significant bits (unit roundoff 3.9e-3) and TF32 11, so results computed
with different tile shapes (hence different convolution algorithms) or on another device can
differ by a few units of the last bf16 place at single pixels, while a stitching error (a seam,
a wrong halo) moves whole rows by far more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from selfdenoise.registry import method_names

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

ROOT = Path(__file__).resolve().parents[1]
METHODS = method_names(self_supervised=True)
TINY = {"steps": 4, "steps_per_epoch": 2, "seed": 0, "device": "cuda"}


def noisy_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Smooth random structure in [0, 1] plus Gaussian noise (float32)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    clean = ndimage.gaussian_filter(rng.random(shape), 2.0)
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    return (clean + rng.normal(0, 0.1, shape)).astype(np.float32)


def assert_close(a: np.ndarray, b: np.ndarray, scale: float) -> None:
    difference = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / scale
    assert difference.mean() <= 1e-3, f"mean difference {difference.mean():.2e} of the range"
    assert difference.max() <= 1e-2, f"largest difference {difference.max():.2e} of the range"


def trained(method: str, axes: str, image: np.ndarray, **settings):
    from selfdenoise import Denoiser

    patch = (32, 32) if axes == "YX" else (8, 32, 32)
    model = Denoiser(method, axes, **{**TINY, "batch_size": 4, "patch_shape": patch, **settings})
    model.fit(image)
    return model


@pytest.fixture(scope="module")
def images():
    return {"YX": noisy_image((96, 128)), "ZYX": noisy_image((24, 64, 80), seed=1)}


@pytest.mark.parametrize("amp", ["auto", "off"])
@pytest.mark.parametrize("axes", ["YX", "ZYX"])
@pytest.mark.parametrize("method", METHODS)
def test_training_steps_on_cuda(images, method, axes, amp):
    image = images[axes]
    model = trained(method, axes, image, amp=amp)
    assert all(p.device.type == "cuda" for p in model.network.parameters())
    assert model.history and all(np.isfinite(row["val_loss"]) for row in model.history)
    from selfdenoise.nets import build_network

    torch.manual_seed(0)  # the seed the model was initialised with
    initial = build_network(model.config.network, model.config.ndim, 1).state_dict()
    trained_weights = model.network.state_dict()
    assert any(not torch.equal(trained_weights[k].cpu(), v) for k, v in initial.items())
    denoised = model.predict(image)
    assert denoised.shape == image.shape and np.isfinite(denoised).all()
    assert np.std(denoised) > 0


@pytest.mark.parametrize(("axes", "tile"), [("YX", (64, 64)), ("ZYX", (16, 32, 32))])
def test_tiled_equals_whole_under_bf16(images, axes, tile):
    assert torch.cuda.is_bf16_supported()
    image = images[axes]
    model = trained("neighbor2neighbor", axes, image, half="bf16")
    whole = model.predict(image, tile_shape=image.shape)
    tiled = model.predict(image, tile_shape=tile)
    assert_close(tiled, whole, float(np.ptp(whole)))
    model.continue_training(half="off")  # float32 (TF32) as a check of the check
    whole = model.predict(image, tile_shape=image.shape)
    assert_close(model.predict(image, tile_shape=tile), whole, float(np.ptp(whole)))


def test_out_of_memory_halves_the_tile_and_stays_correct(images):
    model = trained("n2v", "YX", images["YX"], half="off")
    big = np.tile(images["YX"][:64, :64], (64, 64))  # 4096 x 4096
    reference = model.predict(big, tile_shape=(512, 512))
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(2**30 / total)  # 1 GiB
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = model.predict(big, tile_shape=(4096, 4096), batch_size=1)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    notices = [str(w.message) for w in caught if "out of device memory: tile" in str(w.message)]
    assert notices, [str(w.message) for w in caught]
    assert "4096x4096 ->" in notices[0]
    assert_close(result, reference, float(np.ptp(reference)))


def test_save_on_gpu_load_on_gpu_and_cpu(images, tmp_path):
    from selfdenoise import Denoiser

    image = images["YX"]
    model = trained("noise2same", "YX", image, half="off")
    expected = model.predict(image)
    path = model.save(tmp_path / "model")
    on_gpu = Denoiser.load(path, device="cuda")
    on_cpu = Denoiser.load(path, device="cpu")
    assert next(on_cpu.network.parameters()).device.type == "cpu"
    for name, value in model.network.state_dict().items():
        assert torch.equal(on_cpu.network.state_dict()[name], value.cpu()), name
    assert_close(on_gpu.predict(image), expected, float(np.ptp(expected)))
    assert_close(on_cpu.predict(image), expected, float(np.ptp(expected)))


def test_host_to_device_pins_and_keeps_values():
    from selfdenoise.device import host_to_device

    batch = np.random.default_rng(0).normal(size=(4, 1, 8, 16, 16)).astype(np.float32)
    tensor = host_to_device(batch, torch.device("cuda"), torch.channels_last_3d)
    assert tensor.device.type == "cuda"
    assert tensor.is_contiguous(memory_format=torch.channels_last_3d)
    np.testing.assert_array_equal(tensor.cpu().numpy(), batch)


@pytest.mark.parametrize(("axes", "shape"), [("YX", (384, 384)), ("ZYX", (40, 160, 160))])
def test_device_aware_sizes_fit_and_the_estimate_holds(axes, shape):
    """Train the hungriest method in float32 at the sizes the rule picks on this GPU."""
    from selfdenoise import Denoiser
    from selfdenoise.device import (
        GPU_TRAINING_FRACTION,
        free_memory_bytes,
        gpu_settings,
        training_bytes_per_voxel,
        training_sizes,
    )

    assert gpu_settings("cuda").amp_dtype in (torch.bfloat16, torch.float16)
    torch.cuda.empty_cache()
    ndim = len(shape)
    free = free_memory_bytes("cuda")
    batch, patch, reason = training_sizes("cuda", ndim, 1, 32, 2, image_shape=shape)
    print(reason)
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    model = Denoiser(
        "noise2same", axes, **{**TINY, "steps": 2}, batch_size=batch, patch_shape=patch, amp="off"
    )
    model.fit(noisy_image(shape, seed=2))
    peak = torch.cuda.max_memory_allocated() - before
    estimate = batch * np.prod(patch) * training_bytes_per_voxel(ndim, 1, 32, 2)
    print(f"peak {peak / 2**30:.2f} GiB, estimate {estimate / 2**30:.2f} GiB")
    assert estimate <= GPU_TRAINING_FRACTION * free or (batch, patch) in ((16, (64, 64)),)
    assert 0.2 <= peak / estimate <= 1 / GPU_TRAINING_FRACTION


def test_default_fit_on_cuda_uses_the_device_aware_batch_and_patch():
    from selfdenoise import Denoiser

    model = Denoiser("n2v", "YX", **TINY)
    model.fit(noisy_image((256, 256), seed=3))
    note = model.training_sizes_note
    batch = int(note.split(" x ")[0])
    assert batch >= 16 and note.startswith(f"{batch} x 128x128 patches; CUDA:"), note
    assert model.config.training.patch_shape is None  # the model's settings are untouched
    assert model.config.training.batch_size is None


def test_compile_opt_in_trains_on_cuda():
    from selfdenoise import Denoiser

    model = Denoiser(
        "n2v", "YX", **{**TINY, "batch_size": 4, "patch_shape": (32, 32)}, compile=True
    )
    records = list(model.fit_iter(noisy_image((96, 96), seed=4)))
    assert not any("ignored" in r.message for r in records)
    assert model.steps_trained == 4 and np.isfinite(model.history[-1]["val_loss"])


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np, torch, torch.distributed as dist
    from selfdenoise import Denoiser

    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl")  # with one process the engine may leave it to us
    seen = set()

    def record(progress):
        if dist.is_initialized():
            seen.add((dist.get_backend(), dist.get_world_size()))

    image = np.random.default_rng(0).normal(size=(96, 96)).astype(np.float32)
    model = Denoiser(
        "neighbor2neighbor", "YX", steps=6, steps_per_epoch=3, batch_size=4,
        patch_shape=(32, 32), device=f"cuda:{local}", seed=0,
    )
    model.fit(image, callback=record)
    path = model.save(os.path.join(sys.argv[1], "ddp_model"))
    steps = model.history[-1]["step"]
    if dist.is_initialized():
        dist.destroy_process_group()
    print("RESULT " + json.dumps({"seen": sorted(seen), "steps": steps, "path": str(path)}))
    """
)


def test_ddp_one_process_with_nccl(tmp_path):
    assert torch.distributed.is_nccl_available()
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
    ]
    done = subprocess.run(
        [*command, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(row for row in done.stdout.splitlines() if row.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["seen"] == [["nccl", 1]]
    assert result["steps"] == 6 and Path(result["path"]).exists()


def test_divergence_on_cuda_is_caught_without_per_step_reads():
    from selfdenoise import Denoiser, SelfDenoiseError
    from selfdenoise.training import LOSS_READ_EVERY

    model = Denoiser(
        "n2v",
        "YX",
        **{**TINY, "steps": 100, "steps_per_epoch": 100},
        learning_rate=1e9,
        batch_size=4,
        patch_shape=(32, 32),
        amp="off",
    )
    seen = []
    with pytest.raises(SelfDenoiseError, match="diverged at step") as info:
        for progress in model.fit_iter(noisy_image((96, 96), seed=5)):
            seen.append(progress.step)
    first_bad = int(str(info.value).split("step ")[1].split()[0])
    assert seen[-1] < first_bad + LOSS_READ_EVERY and model.steps_trained == first_bad - 1
    assert all(torch.isfinite(p).all() for p in model.network.parameters())
