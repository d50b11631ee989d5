"""Tests for the N-dimensional U-Net (selfdenoise.nets)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from selfdenoise.config import NetworkConfig
from selfdenoise.nets import (
    build_network,
    count_parameters,
    flops_per_pixel,
    receptive_radius,
    size_multiple,
)
from selfdenoise.nets.unet import BlurPool
from selfdenoise.registry import get_method

OPTION_COMBOS = [
    dict(depth=d, blurpool=b, top_skip=t, residual_blocks=r, batch_norm=n)
    for d, b, t, r, n in itertools.product((1, 2, 3), *[(False, True)] * 4)
]


def _config(**options) -> NetworkConfig:
    options.setdefault("base_channels", 2)
    return NetworkConfig(**options)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded: tiny networks run faster without thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize(
    "options", OPTION_COMBOS, ids=lambda o: "-".join(f"{v:d}" for v in o.values())
)
def test_output_shape(options, ndim):
    config = _config(**options)
    network = build_network(config, ndim, in_channels=2, out_channels=3)
    multiple = size_multiple(config)
    spatial = tuple(multiple * (i + 1) for i in range(ndim))
    out = network(torch.randn(2, 2, *spatial))
    assert out.shape == (2, 3, *spatial)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_out_channels_default_to_in_channels():
    network = build_network(_config(), 2, in_channels=3)
    assert network(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_size_multiple():
    assert [size_multiple(NetworkConfig(depth=d)) for d in (1, 2, 3, 4)] == [2, 4, 8, 16]


@pytest.mark.parametrize("spatial", [(30, 32), (32, 33), (6, 8, 8)])
def test_indivisible_size_raises(spatial):
    network = build_network(_config(depth=2), len(spatial), in_channels=1)
    with pytest.raises(ValueError, match="reflect-pad"):
        network(torch.randn(1, 1, *spatial))


def test_reflect_padded_odd_size_works():
    config = _config(depth=2)
    network = build_network(config, 2, in_channels=1).eval()
    image = torch.randn(1, 1, 29, 31)
    multiple = size_multiple(config)
    pad_y, pad_x = (-s % multiple for s in image.shape[2:])
    padded = F.pad(image, (0, pad_x, 0, pad_y), mode="reflect")
    out = network(padded)[..., :29, :31]
    assert out.shape == image.shape


def test_wrong_channels_or_ndim_raise():
    network = build_network(_config(), 2, in_channels=1)
    with pytest.raises(ValueError, match="expected"):
        network(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="expected"):
        network(torch.randn(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="ndim"):
        build_network(_config(), 4, in_channels=1)


def test_invalid_config_is_a_user_error():
    from selfdenoise import SelfDenoiseError

    with pytest.raises(SelfDenoiseError):
        build_network(NetworkConfig(kernel_size=4), 2, in_channels=1)


def _measured_radius(network, ndim: int, axis: int, length: int) -> int:
    """Largest distance along ``axis`` at which an input pixel has a gradient on an output."""
    multiple = network.size_multiple
    shape = [multiple] * ndim
    shape[axis] = length
    x = torch.randn(1, 1, *shape, dtype=torch.float64, requires_grad=True)
    y = network(x)
    largest = 0
    for offset in range(multiple):  # every phase of the pooling grid
        position = [0] * ndim
        position[axis] = length // 2 + offset
        (gradient,) = torch.autograd.grad(y[(0, 0, *position)], x, retain_graph=True)
        support = torch.nonzero(gradient[0, 0].abs().sum(dim=[d for d in range(ndim) if d != axis]))
        if len(support):
            largest = max(largest, int((support[:, 0] - position[axis]).abs().max()))
    return largest


RADIUS_CASES = [
    (2, dict(depth=1)),
    (2, dict(depth=2)),
    (2, dict(depth=3)),
    (2, dict(depth=2, kernel_size=5)),
    (2, dict(depth=2, blurpool=True, top_skip=False)),
    (2, dict(depth=2, residual_blocks=True, batch_norm=True)),
    (3, dict(depth=1)),
    (3, dict(depth=2, blurpool=True, top_skip=False)),
    (3, dict(depth=2, residual_blocks=True, batch_norm=True)),
]


@pytest.mark.parametrize(("ndim", "options"), RADIUS_CASES)
def test_receptive_radius_is_a_tight_upper_bound(ndim, options):
    # 8 channels and a fixed seed: with 4 channels every ReLU at the probed pixel can be dead,
    # and then no gradient support can be measured at all.
    torch.manual_seed(0)
    config = _config(base_channels=8, **options)
    network = build_network(config, ndim, in_channels=1).double().eval()
    radius = receptive_radius(config, ndim)
    multiple = size_multiple(config)
    length = (2 * radius // multiple + 3) * multiple
    for axis in range(ndim):
        measured = _measured_radius(network, ndim, axis, length)
        assert measured <= radius, (axis, measured, radius)
        assert radius <= 2 * measured, (axis, measured, radius)


def test_pixels_outside_the_radius_do_not_change_the_output():
    config = _config(depth=2, blurpool=True)
    network = build_network(config, 2, in_channels=1).eval()
    radius = receptive_radius(config, 2)
    size = (2 * radius // 4 + 4) * 4
    image = torch.randn(1, 1, size, size)
    centre = size // 2
    perturbed = image.clone()
    perturbed[..., centre + radius + 1 :, :] += 10.0
    perturbed[..., : centre - radius, :] -= 10.0
    with torch.no_grad():
        before, after = network(image), network(perturbed)
    assert torch.equal(before[..., centre, :], after[..., centre, :])


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize(
    "options",
    [dict(), dict(blurpool=True, top_skip=False), dict(residual_blocks=True, batch_norm=True)],
)
def test_channels_last_gives_the_same_output(ndim, options):
    config = _config(depth=2, base_channels=4, **options)
    network = build_network(config, ndim, in_channels=1).eval()
    x = torch.randn(2, 1, *(8,) * ndim)
    memory_format = torch.channels_last if ndim == 2 else torch.channels_last_3d
    with torch.no_grad():
        expected = network(x)
        network = network.to(memory_format=memory_format)
        result = network(x.contiguous(memory_format=memory_format))
    torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ndim", [2, 3])
def test_channels_last_training_gives_the_same_gradients(ndim):
    """Upsample hands its gradient over as a channels-last copy (speed); values must not move."""
    config = _config(depth=2, base_channels=4)
    network = build_network(config, ndim, in_channels=1)
    x = torch.randn(2, 1, *(16,) * ndim)
    target = torch.randn_like(x)
    memory_format = torch.channels_last if ndim == 2 else torch.channels_last_3d

    def gradients(net, image):
        net.zero_grad()
        image = image.clone().requires_grad_(True)
        F.mse_loss(net(image), target).backward()
        return [p.grad.clone() for p in net.parameters()] + [image.grad]

    expected = gradients(network, x)
    network = network.to(memory_format=memory_format)
    result = gradients(network, x.contiguous(memory_format=memory_format))
    assert result[-1].is_contiguous(memory_format=memory_format)
    for got, want in zip(result, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_initialisation_is_deterministic():
    config = _config(depth=2, residual_blocks=True, batch_norm=True)
    torch.manual_seed(3)
    first = build_network(config, 2, 1).state_dict()
    torch.manual_seed(3)
    second = build_network(config, 2, 1).state_dict()
    torch.manual_seed(4)
    third = build_network(config, 2, 1).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_state_dict_has_no_fixed_blur_kernel():
    network = build_network(_config(blurpool=True), 2, 1)
    assert not any("weight" in k and "downs" in k for k in network.state_dict())


def test_parameter_count_matches_hand_count():
    c, k = 8, 9  # base channels, 3x3 taps
    expected = (
        (k * 1 * c + c)
        + (k * c * c + c)  # encoder block
        + (k * c * 2 * c + 2 * c)
        + (k * 2 * c * 2 * c + 2 * c)  # bottleneck
        + (2 * c * c + c)  # 1x1 before up-sampling
        + (k * 2 * c * c + c)
        + (k * c * c + c)  # decoder block on the concatenation
        + (c + 1)  # head
    )
    network = build_network(NetworkConfig(depth=1, base_channels=c), 2, in_channels=1)
    assert count_parameters(network) == expected


def test_parameter_counts_are_sane():
    counts = {
        method: count_parameters(
            build_network(NetworkConfig(**get_method(method).defaults.get("network", {})), 2, 1)
        )
        for method in ("n2v", "n2v2", "noise2same")
    }
    assert all(50_000 < n < 2_000_000 for n in counts.values()), counts
    small = count_parameters(build_network(NetworkConfig(base_channels=16), 2, 1))
    assert 3.5 < counts["n2v"] / small < 4.1  # channels doubled -> ~4x weights
    three_d = count_parameters(build_network(NetworkConfig(), 3, 1))
    assert 2.5 < three_d / counts["n2v"] < 3.1  # 27 vs 9 taps


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize(
    "options",
    [dict(), dict(blurpool=True, top_skip=False), dict(residual_blocks=True, batch_norm=True)],
)
def test_flops_per_pixel_matches_counted_convolutions(ndim, options):
    config = _config(depth=2, base_channels=4, **options)
    network = build_network(config, ndim, in_channels=2)
    counted = []

    def count_conv(module, inputs, output):
        counted.append(output[0].numel() * module.weight[0].numel())

    def count_blur(module, inputs, output):
        counted.append(output[0].numel() * 3**ndim)

    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d)):
            module.register_forward_hook(count_conv)
        elif isinstance(module, BlurPool):
            module.register_forward_hook(count_blur)
    shape = (8,) * ndim
    with torch.no_grad():
        network(torch.randn(1, 2, *shape))
    pixels = 8**ndim
    assert flops_per_pixel(config, ndim, 2) == pytest.approx(sum(counted) / pixels)


@pytest.mark.parametrize("ndim", [2, 3])
def test_the_network_knows_its_size_multiple_and_receptive_radius(ndim):
    config = NetworkConfig(depth=3, base_channels=4)
    network = build_network(config, ndim, 1)
    assert network.size_multiple == size_multiple(config) == 8
    assert network.receptive_radius == receptive_radius(config, ndim)


def test_an_oversized_network_is_refused_before_allocation():
    from selfdenoise import SelfDenoiseError
    from selfdenoise.nets import MAX_PARAMETERS

    config = NetworkConfig(depth=6, base_channels=256)
    with pytest.raises(SelfDenoiseError, match=f"limit {MAX_PARAMETERS:,}"):
        build_network(config, 3, 1)
