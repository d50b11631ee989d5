import json

import pytest

from selfdenoise import SelfDenoiseError
from selfdenoise.config import METHODS, DenoiserConfig, make_config


@pytest.mark.parametrize("method", METHODS)
def test_every_method_has_valid_defaults_that_round_trip_through_json(method):
    config = make_config(method, "ZYX")
    restored = DenoiserConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.ndim == 3


def test_method_defaults_follow_the_papers():
    n2v2 = make_config("n2v2")
    assert n2v2.network.blurpool and not n2v2.network.top_skip
    assert n2v2.masking.fill == "median"
    assert make_config("n2v").masking.fill == "uniform"
    n2s = make_config("noise2same")
    assert n2s.masking.fill == "donut" and n2s.lambda_inv == "auto"
    assert make_config("noise2self").masking.mode == "bernoulli"


def test_user_settings_override_method_defaults_flat_and_nested():
    config = make_config("n2v2", blurpool=False, training={"steps": 7}, batch_size=3)
    assert config.network.blurpool is False
    assert config.training.steps == 7 and config.training.batch_size == 3
    assert config.training.total_steps == 7
    assert make_config(epochs=3, steps_per_epoch=5).training.total_steps == 15


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"method": "n3v"}, "method must be one of"),
        ({"colour": 1}, "unknown setting 'colour'"),
        ({"fraction": 0.9}, "masked fraction"),
        ({"patch_shape": (64, -1)}, "patch_shape"),
        ({"depth": 9}, "depth"),
        ({"device": "tpu"}, "device must be one of"),
        ({"device": "cuda:x"}, "device must be one of"),
        ({"device": "cpu:0"}, "device must be one of"),
        ({"lambda_inv": "big"}, "lambda_inv"),
        ({"axes": "YXY"}, "repeats"),
        ({"axes": "ZY"}, "must contain Y and X"),
    ],
)
def test_bad_settings_give_one_line_errors(settings, fragment):
    kwargs = dict(settings)
    method = kwargs.pop("method", "noise2same")
    axes = kwargs.pop("axes", "YX")
    with pytest.raises(SelfDenoiseError, match=fragment) as info:
        make_config(method, axes, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "mps", "cuda:0", "cuda:3"])
def test_device_names_include_one_gpu_of_several(device):
    """`cuda:N` picks one GPU (what a torchrun worker passes for its local rank)."""
    assert make_config("n2v", "YX", device=device).training.device == device


def test_cli_takes_a_gpu_index_and_refuses_other_devices(capsys):
    from selfdenoise.cli import build_parser

    parser = build_parser()
    arguments = parser.parse_args(["train", "in.tif", "--out", "m", "--device", "cuda:1"])
    assert arguments.device == "cuda:1"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "in.tif", "--out", "m", "--device", "gpu"])
    assert "expected one of auto, cpu, cuda, mps, cuda:N; got 'gpu'" in capsys.readouterr().err


def test_from_dict_rejects_unknown_keys():
    data = make_config().to_dict()
    data["network"]["wings"] = 2
    with pytest.raises(SelfDenoiseError, match="wings"):
        DenoiserConfig.from_dict(data)


def test_batch_size_is_left_to_the_device_unless_given():
    from selfdenoise.config import cpu_batch

    assert make_config("n2v2", "YX").training.batch_size is None
    assert make_config("n2v2", "ZYX").training.batch_size is None
    assert (cpu_batch(2), cpu_batch(3)) == (16, 4)  # what the CPU recipe fills in
    assert make_config("n2v2", "TZYX", batch_size=8).training.batch_size == 8
    assert make_config("n2v2", "ZYX", training={"batch_size": 2}).training.batch_size == 2
    for bad in (0, -1, 2.5):
        with pytest.raises(SelfDenoiseError, match="batch_size"):
            make_config("n2v2", batch_size=bad)


def test_old_model_files_with_a_batch_number_still_load():
    data = make_config("n2v2", "ZYX", batch_size=6).to_dict()
    assert DenoiserConfig.from_dict(data).training.batch_size == 6
    data["training"]["batch_size"] = None
    assert DenoiserConfig.from_dict(data).training.batch_size is None


def test_default_method_is_the_cpu_budget_winner():
    from selfdenoise import Denoiser
    from selfdenoise.config import DEFAULT_METHOD, METHODS

    assert DEFAULT_METHOD == "neighbor2neighbor" == METHODS[0]
    assert make_config().method == DEFAULT_METHOD
    assert Denoiser().method == DEFAULT_METHOD


def test_a_time_budget_alone_has_no_epoch_limit():
    assert make_config(max_minutes=2).training.total_steps is None
    assert make_config(epochs=None, max_minutes=2).training.total_steps is None
    assert make_config(steps=7, max_minutes=2).training.total_steps == 7
    with pytest.raises(SelfDenoiseError, match="give a budget"):
        make_config(epochs=None)


def test_the_architecture_is_named_and_checked():
    assert make_config().network.architecture == "unet"
    with pytest.raises(SelfDenoiseError, match="architecture must be one of unet"):
        make_config(architecture="transformer")
    old_file = make_config().to_dict()
    del old_file["network"]["architecture"]
    assert DenoiserConfig.from_dict(old_file).network.architecture == "unet"


def test_struct_axis_z_needs_3d_axes():
    with pytest.raises(SelfDenoiseError, match="needs 3D"):
        make_config("n2v", "YX", struct_axis=-3)
    assert make_config("n2v", "ZYX", struct_axis=-3).masking.struct_axis == -3
