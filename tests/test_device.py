"""Tests for selfdenoise.device: the CPU for real, CUDA and MPS through mocks."""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch

from selfdenoise import SelfDenoiseError
from selfdenoise import device as dev


@pytest.fixture
def no_gpu():
    with (
        mock.patch("torch.cuda.is_available", return_value=False),
        mock.patch("torch.backends.mps.is_available", return_value=False),
    ):
        yield


@pytest.fixture
def cuda(request):
    """A pretend CUDA machine with two GPUs; ``bf16`` support set by indirect parameter."""
    bf16 = getattr(request, "param", True)
    properties = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_000_000_000)
    with (
        mock.patch("torch.cuda.is_available", return_value=True),
        mock.patch("torch.cuda.device_count", return_value=2),
        mock.patch("torch.cuda.current_device", return_value=0),
        mock.patch("torch.cuda.is_bf16_supported", return_value=bf16),
        mock.patch("torch.cuda.get_device_properties", return_value=properties) as props,
        mock.patch("torch.cuda.mem_get_info", return_value=(10_000, 80_000)) as info,
        mock.patch("torch.cuda.memory_reserved", return_value=3_000),
        mock.patch("torch.cuda.memory_allocated", return_value=1_000),
    ):
        yield SimpleNamespace(properties=props, mem_get_info=info)


@pytest.fixture
def mps_only():
    with (
        mock.patch("torch.cuda.is_available", return_value=False),
        mock.patch("torch.backends.mps.is_available", return_value=True),
    ):
        yield


# --- select_device -------------------------------------------------------------------------


def test_cpu_is_always_available():
    assert dev.select_device("cpu") == torch.device("cpu")
    assert dev.select_device(" CPU ") == torch.device("cpu")


def test_auto_falls_back_to_cpu(no_gpu):
    assert dev.select_device() == torch.device("cpu")


def test_auto_prefers_cuda(cuda):
    with mock.patch("torch.backends.mps.is_available", return_value=True):
        assert dev.select_device("auto") == torch.device("cuda")


def test_auto_uses_mps_without_cuda(mps_only):
    assert dev.select_device("auto") == torch.device("mps")
    assert dev.select_device("mps") == torch.device("mps")


def test_cuda_index(cuda):
    assert dev.select_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(SelfDenoiseError, match="only 2 CUDA GPU"):
        dev.select_device("cuda:2")


@pytest.mark.parametrize(
    ("preference", "message"), [("cuda", "CUDA was requested"), ("mps", "MPS")]
)
def test_missing_gpu_is_a_one_line_error(no_gpu, preference, message):
    with pytest.raises(SelfDenoiseError, match=message) as info:
        dev.select_device(preference)
    assert "\n" not in str(info.value)
    assert "--device cpu or auto" in str(info.value)


@pytest.mark.parametrize("preference", ["gpu", "cpu:0", "cuda:x", ""])
def test_unknown_preference(preference):
    with pytest.raises(SelfDenoiseError, match="device must be one of"):
        dev.select_device(preference)


# --- autocast_dtype ------------------------------------------------------------------------


def test_autocast_on_cpu(monkeypatch):
    cpu = torch.device("cpu")
    assert dev.autocast_dtype(cpu, "off") is None
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: False)
    assert dev.autocast_dtype(cpu, "auto") is None
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: True)
    assert dev.autocast_dtype(cpu, "auto") is torch.bfloat16
    assert dev.autocast_dtype("cpu", "bf16") is torch.bfloat16
    with pytest.raises(SelfDenoiseError, match="fp16"):
        dev.autocast_dtype(cpu, "fp16")
    with pytest.raises(SelfDenoiseError, match="amp must be one of"):
        dev.autocast_dtype(cpu, "half")


@pytest.mark.parametrize(
    ("capabilities", "in_2d", "in_3d"),
    [
        ({"amx_bf16": True, "avx512_bf16": True}, True, True),
        ({"avx512_bf16": True}, True, False),  # 3D bf16 weight gradients are wrong at depth 2
        ({"avx512_bf16": False, "avx2": True}, False, False),
        ({}, False, False),
    ],
    ids=["amx", "avx512-bf16", "avx2-only", "arm-or-older"],
)
def test_cpu_bf16_needs_amx_or_2d_avx512(monkeypatch, capabilities, in_2d, in_3d):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert dev.cpu_has_fast_bf16(2) is in_2d
    assert dev.cpu_has_fast_bf16(3) is in_3d
    assert dev.cpu_has_fast_bf16() is in_3d  # unknown dimensions: as safe as 3D
    expected = {(True, True): "bf16", (False, False): "float32"}.get(
        (in_2d, in_3d), "bf16 in 2D, float32 in 3D"
    )
    assert dev.precision_name("cpu", "auto") == expected
    assert dev.precision_name("cpu", "auto", 2) == ("bf16" if in_2d else "float32")
    assert dev.precision_name("cpu", "off") == "float32"


def test_avx512_bf16_cpu_trains_2d_in_bf16_and_3d_in_float32(monkeypatch):
    """On an AVX-512 BF16 CPU without AMX, ``amp='auto'`` is bf16 for a 2D model's training
    run and float32 for a 3D one; the model and the Train widget's device line say so."""
    from selfdenoise import Denoiser
    from selfdenoise.api import describe_default_device
    from selfdenoise.methods import get_objective
    from selfdenoise.nets import build_network
    from selfdenoise.prepare import prepare_training_data
    from selfdenoise.training import TrainingRun, make_sampler

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    assert Denoiser("n2v2", "YX", device="cpu").training_precision == "bf16"
    assert Denoiser("n2v2", "ZYX", device="cpu").training_precision == "float32"
    assert describe_default_device("cpu", precision=True).endswith(", bf16 in 2D, float32 in 3D")
    for axes, expected in (("YX", torch.bfloat16), ("ZYX", None)):
        model = Denoiser(
            "neighbor2neighbor",
            axes,
            device="cpu",
            regulariser_weight=2.0,
            neighbour_pairs="adjacent",
        )
        network = build_network(model.config.network, model.config.ndim, 1)
        image = np.random.default_rng(0).random((32,) * model.config.ndim, np.float32)
        data, _ = prepare_training_data(model.config, image, axes=axes)
        sampler = make_sampler(data, model.config.training, network.size_multiple)
        objective = get_objective(model.config)
        run = TrainingRun(network, objective, sampler, model.config.training, torch.device("cpu"))
        assert run.amp_dtype is expected


def test_cpu_bf16_probe_never_fails(monkeypatch):
    def broken():
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "get_capabilities", broken, raising=False)
    assert dev.cpu_has_fast_bf16() is False
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    assert dev.cpu_has_fast_bf16() is False
    assert dev.autocast_dtype("cpu", "auto") is None


def test_bf16_on_cpu_really_runs():
    dtype = dev.autocast_dtype("cpu", "bf16")
    conv = torch.nn.Conv2d(1, 2, 3)
    with torch.autocast("cpu", dtype=dtype):
        assert conv(torch.ones(1, 1, 5, 5)).dtype is torch.bfloat16


@pytest.mark.parametrize(
    ("cuda", "expected"), [(True, torch.bfloat16), (False, torch.float16)], indirect=["cuda"]
)
def test_autocast_auto_on_cuda(cuda, expected):
    assert dev.autocast_dtype(torch.device("cuda"), "auto") is expected
    assert dev.autocast_dtype("cuda", "fp16") is torch.float16
    assert dev.autocast_dtype("cuda", "off") is None


@pytest.mark.parametrize("cuda", [False], indirect=True)
def test_explicit_bf16_on_old_gpu(cuda):
    with pytest.raises(SelfDenoiseError, match="does not support"):
        dev.autocast_dtype("cuda", "bf16")


def test_autocast_on_mps():
    assert dev.autocast_dtype("mps", "auto") is None
    assert dev.autocast_dtype("mps", "fp16") is torch.float16
    assert dev.autocast_dtype("mps", "bf16") is torch.bfloat16


# --- describe_device -----------------------------------------------------------------------


def test_describe_cpu():
    threads = torch.get_num_threads()
    assert dev.describe_device("cpu") == f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def test_describe_cuda(cuda):
    assert dev.describe_device(torch.device("cuda", 1)) == "NVIDIA H100 80GB HBM3 (CUDA, 79 GiB)"
    cuda.properties.assert_called_with(1)
    dev.describe_device("cuda")
    cuda.properties.assert_called_with(0)


def test_describe_mps():
    assert dev.describe_device("mps") == "Apple GPU (MPS)"


# --- is_out_of_memory ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4 GB"),
        MemoryError(),
    ],
)
def test_out_of_memory_recognised(exc):
    assert dev.is_out_of_memory(exc)


@pytest.mark.parametrize(
    "exc", [RuntimeError("size mismatch"), ValueError("out of memory"), KeyboardInterrupt()]
)
def test_other_errors_are_not_out_of_memory(exc):
    assert not dev.is_out_of_memory(exc)


def test_real_cpu_allocation_failure_is_out_of_memory():
    try:
        torch.empty(2**62, dtype=torch.uint8)
    except RuntimeError as exc:
        assert dev.is_out_of_memory(exc)


# --- free_memory_bytes ---------------------------------------------------------------------


def test_free_memory_cpu():
    free = dev.free_memory_bytes("cpu")
    assert free is None or free > 0


def test_free_memory_cpu_without_psutil(tmp_path):
    with mock.patch.dict("sys.modules", {"psutil": None}):
        free = dev.free_memory_bytes(torch.device("cpu"))
    assert free is None or free > 0
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  100 kB\nMemAvailable:   2048 kB\n")
    assert dev._meminfo_available(str(meminfo)) == 2048 * 1024
    assert dev._meminfo_available(str(tmp_path / "missing")) is None


def test_free_memory_cuda(cuda):
    assert dev.free_memory_bytes("cuda:1") == 10_000 + 2_000
    cuda.mem_get_info.assert_called_with(1)


def test_free_memory_mps():
    with (
        mock.patch("torch.mps.recommended_max_memory", return_value=8_000, create=True),
        mock.patch("torch.mps.driver_allocated_memory", return_value=3_000, create=True),
    ):
        assert dev.free_memory_bytes("mps") == 5_000
    with mock.patch("torch.mps.recommended_max_memory", side_effect=RuntimeError, create=True):
        assert dev.free_memory_bytes("mps") is None


# --- configure_backends --------------------------------------------------------------------


def test_configure_backends():
    cudnn = torch.backends.cudnn
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision")
    names = ("fp32_precision",) if new_api else ("allow_tf32",)
    saved_matmul = {name: getattr(matmul, name) for name in names}
    saved_cudnn = (cudnn.benchmark, cudnn.conv.fp32_precision if new_api else cudnn.allow_tf32)
    try:
        cudnn.benchmark = False
        dev.configure_backends("cpu")
        assert cudnn.benchmark is False
        dev.configure_backends(torch.device("cuda"))
        assert cudnn.benchmark is True
        if new_api:
            assert matmul.fp32_precision == "tf32"
            assert cudnn.conv.fp32_precision == "tf32"
        else:
            assert matmul.allow_tf32 and cudnn.allow_tf32
    finally:
        for name, value in saved_matmul.items():
            setattr(matmul, name, value)
        cudnn.benchmark = saved_cudnn[0]
        if new_api:
            cudnn.conv.fp32_precision = saved_cudnn[1]
        else:
            cudnn.allow_tf32 = saved_cudnn[1]


def test_training_memory_format_is_channels_last_on_cpu_and_cuda_only():
    from selfdenoise.device import training_memory_format

    assert training_memory_format("cpu", 2) == torch.channels_last
    assert training_memory_format("cpu", 3) == torch.channels_last_3d
    assert training_memory_format("cuda", 2) == torch.channels_last
    assert training_memory_format("mps", 2) == torch.contiguous_format
    assert training_memory_format("cpu", 2, False) == torch.contiguous_format
    assert training_memory_format("mps", 3, True) == torch.channels_last_3d


def test_trained_network_is_handed_back_in_the_default_memory_format():
    from selfdenoise import Denoiser

    image = np.random.default_rng(0).normal(size=(48, 48)).astype(np.float32)
    model = Denoiser("n2v", "YX", steps=2, batch_size=2, patch_shape=(32, 32), device="cpu")
    model.fit(image)
    assert model.training_sizes_note == (
        "2 x 32x32 patches (batch and patch as set); the CPU recipe on cpu"
    )
    weights = [p for p in model.network.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous() for p in weights)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def test_an_unset_batch_trains_with_the_cpu_recipe_on_cpu():
    from selfdenoise import Denoiser

    image = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    model = Denoiser("n2v", "YX", steps=1, base_channels=4, device="cpu")
    assert model.config.training.batch_size is None
    model.fit(image)
    assert model.training_sizes_note == "16 x 64x64 patches; the CPU recipe on cpu"
    assert model.config.training.batch_size is None  # the model's settings stay "auto"


# --- training_sizes: the device-aware rule, with mocked memory figures ----------------------

GIB = 2**30


@pytest.fixture
def restore_backends():
    """Put cuDNN/TF32 switches back after a test that turns them on."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    new_api = hasattr(matmul, "fp32_precision")
    saved = (
        cudnn.benchmark,
        matmul.fp32_precision if new_api else matmul.allow_tf32,
        cudnn.conv.fp32_precision if new_api else cudnn.allow_tf32,
    )
    yield
    cudnn.benchmark = saved[0]
    if new_api:
        matmul.fp32_precision, cudnn.conv.fp32_precision = saved[1], saved[2]
    else:
        matmul.allow_tf32, cudnn.allow_tf32 = saved[1], saved[2]


def _free(monkeypatch, nbytes):
    monkeypatch.setattr(dev, "free_memory_bytes", lambda device: nbytes)


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_cpu_and_mps_keep_the_cpu_recipe(device):
    assert dev.training_sizes(device, 2, 1, 32, 2)[:2] == (16, (64, 64))
    assert dev.training_sizes(device, 3, 1, 32, 2)[:2] == (4, (16, 64, 64))
    assert "CPU recipe" in dev.training_sizes(device, 2, 1, 32, 2).reason


def test_cpu_recipe_is_the_configs_default():
    from selfdenoise.config import make_config

    for axes, ndim in (("YX", 2), ("ZYX", 3)):
        batch, patch = dev.cpu_recipe(ndim)
        config = make_config("n2v", axes)
        assert config.training.batch_size is None  # chosen for the device
        shapes = [(64,) * (ndim - 2) + (300, 400)]
        training, _ = dev.sized_for_device(config.training, config.network, "cpu", 1, shapes)
        assert training.batch_size == batch == (16 if ndim == 2 else 4)
        from selfdenoise.patches import default_patch_shape

        assert default_patch_shape(ndim) == patch


def test_user_settings_win_everywhere(monkeypatch):
    sizes = dev.training_sizes("cpu", 2, 1, 32, 2, user_batch=3, user_patch=(32, 48))
    assert sizes[:2] == (3, (32, 48))
    assert "batch and patch as set" in sizes.reason
    _free(monkeypatch, 80 * GIB)
    sizes = dev.training_sizes("cuda", 2, 1, 32, 2, user_batch=5)
    assert sizes.batch_size == 5 and sizes.patch_shape == (128, 128)
    sizes = dev.training_sizes("cuda", 2, 1, 32, 2, user_patch=(32, 32))
    assert sizes.patch_shape == (32, 32) and sizes.batch_size == 256


def test_small_data_caps_the_gpu_batch_at_a_few_passes(monkeypatch):
    """One 256x256 image: 4 x 65,536 voxels per step at most (16 patches of 128x128, the CPU
    batch), not 256 patches; large data still fills the memory budget; a set batch wins."""
    _free(monkeypatch, 80 * GIB)
    sizes = dev.training_sizes("cuda", 2, 1, 32, 2, image_shape=(256, 256), data_voxels=256**2)
    assert sizes[:2] == (16, (128, 128))
    assert "4x the 65,536 training voxels" in sizes.reason
    assert dev.training_sizes("cuda", 2, 1, 32, 2, data_voxels=12 * 256**2)[:2] == (
        192,
        (128, 128),
    )
    assert dev.training_sizes("cuda", 2, 1, 32, 2, data_voxels=10**9)[:2] == (256, (128, 128))
    assert dev.training_sizes("cuda", 2, 1, 32, 2, data_voxels=100)[0] == 16  # the CPU batch
    set_batch = dev.training_sizes("cuda", 2, 1, 32, 2, user_batch=64, data_voxels=256**2)
    assert set_batch.batch_size == 64


def test_sized_for_device_counts_every_sample_of_the_training_data(monkeypatch):
    from selfdenoise.config import make_config
    from selfdenoise.prepare import prepare_training_data

    _free(monkeypatch, 80 * GIB)
    config = make_config("n2v", "TYX")
    image = np.random.default_rng(0).random((3, 256, 256)).astype(np.float32)
    prepared, _ = prepare_training_data(config, image, axes="TYX")
    assert prepared.training_voxels == 3 * 256**2
    training, note = dev.sized_for_device(
        config.training,
        config.network,
        "cuda",
        1,
        prepared.spatial_shapes,
        data_voxels=prepared.training_voxels,
    )
    assert (training.batch_size, training.patch_shape) == (48, (128, 128)), note


def test_large_gpu_gets_the_caps(monkeypatch):
    _free(monkeypatch, 80 * GIB)
    assert dev.training_sizes("cuda", 2, 1, 32, 2)[:2] == (256, (128, 128))
    # 3D: 0.5 * 80 GiB / (4 * (16 * 32 * (1 + 1/4 + 1/16) + 4)) = 15.97 M voxels -> 30 patches
    per_voxel = dev.training_bytes_per_voxel(3, 1, 32, 2)
    assert per_voxel == 4 * (16 * 32 * 1.3125 + 4)
    assert dev.training_sizes("cuda", 3, 1, 32, 2)[:2] == (30, (32, 128, 128))
    assert "80.0 GiB free" in dev.training_sizes("cuda", 3, 1, 32, 2).reason


def test_small_gpu_grows_what_fits(monkeypatch):
    _free(monkeypatch, 8 * GIB)
    batch, patch, _ = dev.training_sizes("cuda", 3, 1, 32, 2)
    assert patch == (16, 128, 128) and batch == 6  # 32x128x128 would fit only 3 < 4
    _free(monkeypatch, GIB // 4)
    sizes = dev.training_sizes("cuda", 3, 1, 32, 2)
    assert sizes[:2] == (4, (16, 64, 64)) and "little free memory" in sizes.reason


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("gib", [0.1, 0.5, 2, 6, 12, 24, 40, 80, 140])
def test_rule_stays_within_memory_and_never_below_the_cpu_recipe(monkeypatch, ndim, gib):
    _free(monkeypatch, int(gib * GIB))
    batch, patch, _ = dev.training_sizes("cuda", ndim, 1, 32, 2)
    cpu_batch, cpu_patch = dev.cpu_recipe(ndim)
    assert batch >= cpu_batch and all(p >= c for p, c in zip(patch, cpu_patch, strict=True))
    assert batch <= dev.GPU_MAX_BATCH[ndim]
    assert patch in dev.GPU_PATCH_STEPS[ndim]
    used = batch * np.prod(patch) * dev.training_bytes_per_voxel(ndim, 1, 32, 2)
    assert used <= dev.GPU_TRAINING_FRACTION * gib * GIB or (batch, patch) == (cpu_batch, cpu_patch)


def test_more_memory_never_means_less_work(monkeypatch):
    work = []
    for gib in (1, 2, 4, 8, 16, 32, 64):
        _free(monkeypatch, gib * GIB)
        batch, patch, _ = dev.training_sizes("cuda", 3, 1, 32, 2)
        work.append(batch * np.prod(patch))
    assert work == sorted(work) and work[-1] > work[0]


def test_patch_is_clipped_to_the_image(monkeypatch):
    _free(monkeypatch, 80 * GIB)
    batch, patch, _ = dev.training_sizes("cuda", 2, 1, 32, 2, image_shape=(90, 300))
    assert patch == (88, 128) and batch == 256
    assert dev.training_sizes("cuda", 3, 1, 32, 3, image_shape=(20, 64, 512)).patch_shape == (
        16,
        64,
        128,
    )


def test_unknown_free_memory_on_cuda_keeps_the_cpu_recipe(monkeypatch):
    _free(monkeypatch, None)
    sizes = dev.training_sizes("cuda", 2, 1, 32, 2)
    assert sizes[:2] == (16, (64, 64)) and "unknown" in sizes.reason


def test_free_memory_is_read_from_the_cuda_driver(cuda):
    # mem_get_info says 10 kB free: far too little, so the CPU recipe, but the figure was read.
    sizes = dev.training_sizes("cuda:1", 2, 1, 32, 2)
    cuda.mem_get_info.assert_called_with(1)
    assert sizes[:2] == (16, (64, 64))


@pytest.mark.parametrize("ndim", [2, 3])
def test_activation_estimate_covers_every_methods_saved_tensors(ndim):
    """The rule's bytes per voxel are at least what autograd really keeps (CPU, float32)."""
    from selfdenoise.config import make_config
    from selfdenoise.methods import get_objective
    from selfdenoise.nets import build_network
    from selfdenoise.registry import method_names

    shape = (2, 1, 64, 64) if ndim == 2 else (1, 1, 16, 32, 32)  # the smallest patches used
    for method in method_names(self_supervised=True):
        config = make_config(method, "YX" if ndim == 2 else "ZYX")
        torch.manual_seed(0)
        network = build_network(config.network, ndim, 1)
        objective = get_objective(
            config,
            lambda_inv=2.0 if method == "noise2same" else None,
            regulariser_weight=2.0 if method == "neighbor2neighbor" else None,  # the costlier
            neighbour_pairs="adjacent" if method == "neighbor2neighbor" else None,
        )
        seen: dict[int, int] = {}

        def pack(tensor, seen=seen):
            seen.setdefault(tensor.data_ptr(), tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            objective.training_loss(network, torch.randn(shape), torch.Generator().manual_seed(0))
        measured = sum(seen.values()) / np.prod(shape)
        net = config.network
        estimate = dev.training_bytes_per_voxel(ndim, 1, net.base_channels, net.depth)
        assert measured > 0.1 * estimate, method  # the hook saw the network's activations
        assert measured <= estimate, (method, measured, estimate)


# --- gpu_settings and host_to_device ---------------------------------------------------------


def test_gpu_settings_off_on_cpu(restore_backends):
    torch.backends.cudnn.benchmark = False
    settings = dev.gpu_settings("cpu", compile=True)
    assert settings == dev.GpuSettings(False, False, None, False, False, False)
    assert settings.describe() == "defaults"
    assert torch.backends.cudnn.benchmark is False


@pytest.mark.parametrize(
    ("cuda", "dtype"), [(True, torch.bfloat16), (False, torch.float16)], indirect=["cuda"]
)
def test_gpu_settings_on_cuda(cuda, dtype, restore_backends):
    torch.backends.cudnn.benchmark = False
    settings = dev.gpu_settings("cuda")
    assert torch.backends.cudnn.benchmark is True
    assert settings.amp_dtype is dtype and settings.pin_memory and settings.non_blocking
    assert not settings.compile and dev.gpu_settings("cuda", compile=True).compile
    name = "bfloat16" if dtype is torch.bfloat16 else "float16"
    assert settings.describe() == (
        f"cudnn.benchmark, TF32, {name} autocast, pinned non-blocking copies"
    )


def test_host_to_device_on_cpu_keeps_values_and_format():
    batch = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    tensor = dev.host_to_device(batch[:, :, ::-1], torch.device("cpu"), torch.channels_last)
    assert tensor.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(tensor.numpy(), batch[:, :, ::-1])


# --- benchmarks/gpu.py without a GPU ---------------------------------------------------------

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_gpu_benchmark_refuses_without_cuda():
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent / "src")}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2
    assert done.stdout.strip() == (
        "error: benchmarks/gpu.py needs a CUDA GPU (use --cpu-smoke to test the script)."
    )


def test_gpu_benchmark_renders_targets_from_results(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    gpu = importlib.import_module("gpu")
    training = {"ndim": 2, "amp": "auto", "method": "neighbor2neighbor", "sizes": "device"}
    results = {
        "mode": "quick",
        "seconds": 200.0,
        "environment": {
            "machine": "m",
            "torch": "2.11",
            "device": "NVIDIA H100 (CUDA, 79 GiB)",
            "gpu": "NVIDIA H100",
            "gpu_settings": "cudnn.benchmark",
            "sizes_2d": "a",
            "sizes_3d": "b",
        },
        "throughput": {
            "training": [
                {
                    **training,
                    "batch": 256,
                    "patch": [128, 128],
                    "steps_per_s": 10.0,
                    "patches_per_s": 2560.0,
                    "mvox_per_s": 41.9,
                    "bare_mvox_per_s": 83.9,
                    "utilisation": 0.5,
                },
            ],
            "bare_large_batch": [],
        },
        "quality": {"skipped": "Set12 not found"},
    }
    text = gpu.render(results)
    assert "| default 2D training (device sizes) / bare network | >= 0.40 | 0.50 |" in text
    assert "GPU: NVIDIA H100" in text and "Quality: Set12 not found." in text


# --- sized_for_device: the engine's hook -----------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_sized_for_device_fills_only_an_unset_batch_on_cpu_and_mps(device):
    from selfdenoise.config import make_config

    config = make_config("n2v", "YX")
    before = config.to_dict()
    training, reason = dev.sized_for_device(
        config.training, config.network, device, 1, [(300, 400), (200, 500)]
    )
    assert config.to_dict() == before  # the model's settings are untouched
    assert training.batch_size == 16 and training.patch_shape is None  # the CPU recipe
    assert dataclasses.replace(training, batch_size=None) == config.training
    assert reason == f"16 x 64x64 patches; the CPU recipe on {device}"
    mine = dataclasses.replace(config.training, batch_size=3)
    training, reason = dev.sized_for_device(mine, config.network, device, 1, [(300, 400)])
    assert training is mine and reason.startswith("3 x 64x64 patches (batch as set)")


def test_sized_for_device_fills_the_unset_patch_on_cuda(monkeypatch):
    from selfdenoise.config import make_config

    _free(monkeypatch, 80 * GIB)
    config = make_config("n2v", "ZYX")
    before = config.to_dict()
    training, reason = dev.sized_for_device(
        config.training, config.network, "cuda", 1, [(40, 300, 400), (64, 100, 512)]
    )
    assert config.to_dict() == before  # the model's settings are untouched
    assert training.patch_shape == (32, 100, 128)  # clipped to the smallest image
    assert training.batch_size > 4 and "as set" not in reason  # the memory rule's batch
    training, _ = dev.sized_for_device(config.training, config.network, "cuda", 1, [(64, 256, 256)])
    assert training.batch_size == 30 and training.patch_shape == (32, 128, 128)
    set_batch = dataclasses.replace(config.training, batch_size=4)
    training, reason = dev.sized_for_device(set_batch, config.network, "cuda", 1, [(64, 256, 256)])
    assert training.batch_size == 4 and "batch as set" in reason
    mine = dataclasses.replace(config.training, patch_shape=(8, 32, 32))
    assert dev.sized_for_device(mine, config.network, "cuda", 1, [(64, 256, 256)])[
        0
    ].patch_shape == (8, 32, 32)


def test_cpu_prediction_stays_float32_unless_bf16_is_asked(monkeypatch):
    from selfdenoise.tiling import _predict

    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: True)
    cpu = torch.device("cpu")
    assert dev.autocast_dtype(cpu, "auto") is torch.bfloat16  # training's auto
    assert _predict._amp_dtype(cpu, "auto") is None
    assert _predict._amp_dtype(cpu, "bf16") is torch.bfloat16
    assert _predict._amp_dtype(cpu, "off") is None


def test_denoiser_says_what_precision_it_trains_in(monkeypatch):
    from selfdenoise import Denoiser

    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: True)
    assert Denoiser("n2v", "YX", device="cpu").training_precision == "bf16"
    assert Denoiser("n2v", "YX", device="cpu", amp="off").training_precision == "float32"
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: False)
    assert Denoiser("n2v", "YX", device="cpu").training_precision == "float32"
    with pytest.raises(SelfDenoiseError, match="fp16 mixed precision needs a GPU"):
        _ = Denoiser("n2v", "YX", device="cpu", amp="fp16").training_precision


def test_default_device_description_can_name_the_precision(monkeypatch):
    """The Train widget's device line: the device, then what the default amp trains in."""
    from selfdenoise.api import describe_default_device

    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: True)
    assert describe_default_device("cpu") == dev.describe_device("cpu")
    assert describe_default_device("cpu", precision=True) == f"{dev.describe_device('cpu')}, bf16"
    monkeypatch.setattr(dev, "cpu_has_fast_bf16", lambda *_: False)
    assert describe_default_device("cpu", precision=True).endswith(", float32")


@pytest.mark.parametrize(
    ("capabilities", "patch_shape", "warned"),
    [
        ({"avx512_bf16": True}, (8, 32, 32), True),  # depth 2 at level 2 of a depth-2 U-Net
        ({"avx512_bf16": True}, (4, 32, 32), True),
        ({"avx512_bf16": True}, (16, 64, 64), False),  # the default 3D patch: 16, 8, 4
        ({"avx512_bf16": True}, (64, 64), False),  # 2D convolutions are not affected
        ({"avx512_bf16": True, "amx_bf16": True}, (8, 32, 32), False),
        ({"avx2": True}, (8, 32, 32), False),
    ],
    ids=["z8", "z4", "z16-default", "2d", "amx", "avx2-only"],
)
def test_bf16_3d_gradients_at_depth_two_are_warned_of(
    monkeypatch, capabilities, patch_shape, warned
):
    """AVX-512 BF16 without AMX: bf16 3D weight gradients are wrong on inputs 2 voxels deep
    (benchmarks/bf16_determinism.py); training with amp='bf16' there says so once."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    note = dev.cpu_bf16_3d_fault(patch_shape, levels=2)
    assert bool(note) is warned
    if warned:
        assert f"patches {patch_shape[0]} deep" in note and "amp='off'" in note


def _bf16_3d_run_on_avx512_cpu(monkeypatch, steps: int, **settings):
    """A small 3D Noise2Void model set to train in bf16 with 8-deep patches, and its volume,
    on a CPU that reports AVX-512 BF16 without AMX."""
    from selfdenoise import Denoiser

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    volume = np.random.default_rng(0).normal(0.5, 0.1, (8, 32, 32)).astype(np.float32)
    model = Denoiser(
        "n2v",
        "ZYX",
        steps=steps,
        steps_per_epoch=steps,
        amp="bf16",
        device="cpu",
        base_channels=8,
        batch_size=2,
        patch_shape=(8, 16, 16),
        **settings,
    )
    return model, volume


def test_training_in_bf16_on_such_a_cpu_warns_once(monkeypatch):
    model, volume = _bf16_3d_run_on_avx512_cpu(monkeypatch, steps=2)
    with pytest.warns(RuntimeWarning, match="patches 8 deep"):
        messages = [p.message for p in model.fit_iter(volume) if p.message]
    assert "patches 8 deep" in messages[0] and "amp='off'" in messages[0]
    # On a CPU that really has AVX-512 BF16 the fault it warns of can strike: a step with
    # non-finite gradients is skipped and says so (after the warning, when it is step 1).
    assert sum("patches 8 deep" in message for message in messages) == 1
    assert all("was skipped" in message for message in messages[1:])


def test_a_skipped_first_step_keeps_the_start_note(monkeypatch):
    """When the fault strikes step 1, its note joins the bf16 warning instead of hiding it
    (CI once saw only the skip note)."""
    from selfdenoise._run_parts import GradientGuard

    refused = []

    def refuse_first(self, parameters):
        if not refused:
            refused.append(True)
            self.skipped += 1
            self.in_a_row += 1
            return False
        return True

    monkeypatch.setattr(GradientGuard, "allows_step", refuse_first)
    model, volume = _bf16_3d_run_on_avx512_cpu(monkeypatch, steps=2)
    with pytest.warns(RuntimeWarning, match="patches 8 deep"):
        messages = [p.message for p in model.fit_iter(volume) if p.message]
    assert len(messages) == 1
    assert "patches 8 deep" in messages[0] and "step 1 was skipped" in messages[0]


def test_the_bf16_warning_does_not_hide_the_compile_note(monkeypatch):
    """Both start notes reach the first progress message (compile asked for on the CPU)."""
    model, volume = _bf16_3d_run_on_avx512_cpu(monkeypatch, steps=1, compile=True)
    with pytest.warns(RuntimeWarning, match="patches 8 deep"):
        first = next(p.message for p in model.fit_iter(volume) if p.message)
    assert "torch.compile is used on CUDA only" in first and "patches 8 deep" in first
