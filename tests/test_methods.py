"""Tests of the training objectives (selfdenoise.methods)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import ndimage  # noqa: E402
from torch import nn  # noqa: E402

from selfdenoise._errors import SelfDenoiseError  # noqa: E402
from selfdenoise.config import MaskingConfig, make_config  # noqa: E402
from selfdenoise.masking import make_mask, make_masks, mask_and_fill  # noqa: E402
from selfdenoise.methods import (  # noqa: E402
    N2V2,
    Noise2Same,
    Noise2Self,
    Noise2Void,
    Supervised,
    get_objective,
    lambda_inv_from_sigma,
    masked_pixel_loss,
    noise2same_loss,
    validation_masking,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _known_conv(channels: int = 2) -> nn.Conv2d:
    """3x3 convolution with fixed, non-trivial weights."""
    conv = nn.Conv2d(channels, channels, 3, padding=1, dtype=torch.float64)
    count = conv.weight.numel()
    weights = torch.linspace(-0.5, 0.6, count, dtype=torch.float64).reshape(conv.weight.shape)
    with torch.no_grad():
        conv.weight.copy_(weights)
        conv.bias.copy_(torch.linspace(-0.1, 0.1, channels, dtype=torch.float64))
    return conv


def _conv_numpy(conv: nn.Conv2d, image: np.ndarray) -> np.ndarray:
    """The same convolution in numpy: cross-correlation with zero padding, per sample."""
    weight = conv.weight.detach().numpy()
    bias = conv.bias.detach().numpy()
    out = np.zeros_like(image)
    for b in range(image.shape[0]):
        for c_out in range(weight.shape[0]):
            out[b, c_out] = bias[c_out] + sum(
                ndimage.correlate(image[b, c_in], weight[c_out, c_in], mode="constant")
                for c_in in range(weight.shape[1])
            )
    return out


def _fixed_lambda(method: str) -> dict:
    """Noise2Same's default lambda_inv is 'auto' (resolved by the API from the data); objectives
    built directly from a config need a number."""
    return {"lambda_inv": 2.0} if method == "noise2same" else {}


def _batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=_generator(seed), dtype=torch.float64)


def _offset_network(offset: float, ndim: int = 2) -> nn.Module:
    """f(x) = x + offset, as a 1x1 convolution."""
    conv_class = nn.Conv2d if ndim == 2 else nn.Conv3d
    conv = conv_class(1, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(offset)
    return conv


# --- Noise2Same ---------------------------------------------------------------------------


def test_noise2same_loss_matches_formula_by_hand():
    network = _known_conv(channels=2)
    x = _batch((2, 2, 7, 8))
    mask = torch.zeros((2, 1, 7, 8), dtype=torch.bool)
    mask[0, 0, 1, 2] = mask[0, 0, 5, 6] = mask[1, 0, 3, 3] = True
    x_masked = torch.where(mask, torch.zeros_like(x), x)
    loss, reconstruction, invariance = noise2same_loss(
        network(x), network(x_masked), x, mask, lambda_inv=1.7
    )
    x_np, m_np = x.numpy(), mask.numpy().astype(float)
    o, o_m = _conv_numpy(network, x_np), _conv_numpy(network, x_masked.numpy())
    expected_rec = np.mean((o - x_np) ** 2)
    expected_inv = np.sqrt(np.sum(m_np * (o - o_m) ** 2) / (m_np.sum() * 2))
    assert reconstruction.item() == pytest.approx(expected_rec, rel=1e-5)
    assert invariance.item() == pytest.approx(expected_inv, rel=1e-5)
    assert loss.item() == pytest.approx(expected_rec + 1.7 * expected_inv, rel=1e-5)


@pytest.mark.parametrize("joint_forward", [True, False])
def test_noise2same_training_loss_matches_formula(joint_forward):
    masking = MaskingConfig(fraction=0.05, fill="zero")
    objective = Noise2Same(masking, lambda_inv=0.9, joint_forward=joint_forward)
    network = _known_conv(channels=1)
    x = _batch((3, 1, 16, 16), seed=1)
    loss, logs = objective.training_loss(network, x, _generator(5))
    mask = make_mask(masking, tuple(x.shape), _generator(5)).numpy().astype(float)
    o = _conv_numpy(network, x.numpy())
    o_m = _conv_numpy(network, x.numpy() * (1 - mask))
    expected_rec = np.mean((o - x.numpy()) ** 2)
    expected_inv = np.sqrt(np.sum(mask * (o - o_m) ** 2) / mask.sum())
    assert logs["reconstruction"] == pytest.approx(expected_rec, rel=1e-5)
    assert logs["invariance"] == pytest.approx(expected_inv, rel=1e-5)
    assert loss.item() == pytest.approx(expected_rec + 0.9 * expected_inv, rel=1e-5)


def _gradient(network: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    network.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in network.parameters()])


@pytest.mark.parametrize("joint_forward", [True, False])
def test_noise2same_gradients_flow_through_both_passes(joint_forward):
    masking = MaskingConfig(fraction=0.05, fill="gaussian")
    network = _known_conv(channels=1)
    x = _batch((2, 1, 16, 16), seed=2)
    objective = Noise2Same(masking, lambda_inv=2.0, joint_forward=joint_forward)
    grad = _gradient(network, objective.training_loss(network, x, _generator(6))[0])

    # Replay the generator: the training step masks and fills with mask_and_fill.
    x_masked, _, mask = mask_and_fill(x, masking, _generator(6))

    def reference(detach_plain: bool, detach_masked: bool, lambda_inv: float) -> torch.Tensor:
        o, o_m = network(x), network(x_masked)
        o = o.detach() if detach_plain else o
        o_m = o_m.detach() if detach_masked else o_m
        return _gradient(network, noise2same_loss(o, o_m, x, mask, lambda_inv)[0])

    both = reference(False, False, 2.0)
    torch.testing.assert_close(grad, both)
    reconstruction_only = reference(False, False, 0.0)
    masked_detached = reference(False, True, 2.0)
    assert reconstruction_only.abs().sum() > 0
    assert (grad - reconstruction_only).abs().max() > 1e-6  # invariance term contributes
    assert (grad - masked_detached).abs().max() > 1e-6  # the masked pass gets gradient


def test_noise2same_invariance_gradient_is_finite_when_passes_agree():
    network = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        network.weight.zero_()  # f(x) = bias: both passes identical, invariance 0
    objective = Noise2Same(MaskingConfig(fraction=0.05), lambda_inv=2.0)
    loss, logs = objective.training_loss(network, torch.randn(2, 1, 16, 16), _generator())
    loss.backward()
    assert logs["invariance"] == pytest.approx(0.0, abs=1e-5)
    assert all(torch.isfinite(p.grad).all() for p in network.parameters())


def test_lambda_inv_from_sigma():
    assert lambda_inv_from_sigma(0.5) == 1.0
    assert lambda_inv_from_sigma(1.0) == 2.0
    with pytest.raises(SelfDenoiseError):
        lambda_inv_from_sigma(-1.0)


# --- masked-pixel losses ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["noise2same", "n2v", "n2v2", "noise2self"])
def test_validation_loss_is_masked_pixel_mse_by_hand(method):
    config = make_config(method, "YX", masking={"fraction": 0.05}, **_fixed_lambda(method))
    objective = get_objective(config)
    network = _known_conv(channels=1)
    x = _batch((2, 1, 20, 20), seed=3)
    value = objective.validation_loss(network, x, _generator(7))
    assert not value.requires_grad

    masking = validation_masking(config.masking)
    assert masking.mode == "stratified" and masking.fill == config.masking.fill
    x_masked, scored, _ = mask_and_fill(x, masking, _generator(7))
    x_masked = x_masked.numpy()
    prediction = _conv_numpy(network, x_masked)
    selected = scored.numpy()[:, 0]
    errors = (prediction[:, 0] - x.numpy()[:, 0])[selected]
    assert selected.sum() > 0
    assert value.item() == pytest.approx(np.mean(errors**2), rel=1e-5)


@pytest.mark.parametrize(("method", "fill"), [("n2v", "uniform"), ("n2v2", "median")])
def test_blind_spot_loss_counts_chosen_pixels_not_changed_ones(method, fill):
    # Constant image: every neighbour fill equals the original value, so x_m == x; the loss
    # must still score the chosen pixels (f = x + 0.5 gives exactly 0.25 there).
    objective = get_objective(make_config(method, "YX"))
    assert objective.masking.fill == fill
    x = torch.full((2, 1, 16, 16), 3.0, dtype=torch.float64)
    loss, logs = objective.training_loss(_offset_network(0.5), x, _generator())
    assert loss.item() == pytest.approx(0.25)
    assert logs == {"masked_mse": pytest.approx(0.25)}


def test_struct_n2v_scores_line_centres_only():
    masking = MaskingConfig(fraction=0.02, fill="zero", struct_axis=-1, struct_span=5)
    objective = Noise2Void(masking)
    x = _batch((2, 1, 24, 24), seed=4)
    loss, _ = objective.training_loss(_offset_network(0.0), x, _generator(8))
    centres, hidden = make_masks(masking, tuple(x.shape), _generator(8))
    assert hidden.sum() > centres.sum()
    # f = identity on zero fill: every hidden pixel predicts 0, so the error is x there.
    expected = (x[centres.expand_as(x)] ** 2).mean().item()
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_noise2self_grid_cycles_phases():
    masking = MaskingConfig(mode="grid", grid_period=2, fill="zero")
    objective = Noise2Self(masking)
    network = _known_conv(channels=1)
    x = _batch((1, 1, 8, 8), seed=5)
    for step in range(6):
        loss, _ = objective.training_loss(network, x, _generator(step))
        expected = masked_pixel_loss(network, x, masking, _generator(step), grid_phase=step % 4)
        assert loss.item() == pytest.approx(expected.item())
    assert objective.step == 6


def test_masked_pixel_loss_supports_gradients():
    network = _known_conv(channels=1)
    loss = masked_pixel_loss(
        network, _batch((2, 1, 16, 16)), MaskingConfig(fraction=0.05), _generator()
    )
    loss.backward()
    assert network.weight.grad.abs().sum() > 0


# --- supervised ---------------------------------------------------------------------------


def test_supervised_mse_against_target():
    objective = get_objective(make_config("supervised", "YX"))
    assert isinstance(objective, Supervised) and objective.needs_target
    network = _known_conv(channels=1)
    source, target = _batch((2, 1, 8, 8), seed=6), _batch((2, 1, 8, 8), seed=7)
    expected = np.mean((_conv_numpy(network, source.numpy()) - target.numpy()) ** 2)
    loss, logs = objective.training_loss(network, (source, target), _generator())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logs["mse"] == pytest.approx(expected, rel=1e-5)
    validation = objective.validation_loss(network, (source, target), _generator())
    assert validation.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(SelfDenoiseError):
        objective.training_loss(network, source, _generator())


# --- factory -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected_class"),
    [
        ("noise2same", Noise2Same),
        ("n2v", Noise2Void),
        ("n2v2", N2V2),
        ("noise2self", Noise2Self),
        ("supervised", Supervised),
    ],
)
def test_get_objective_classes(method, expected_class):
    objective = get_objective(make_config(method, "ZYX", **_fixed_lambda(method)))
    assert type(objective) is expected_class
    assert objective.name == method
    assert objective.needs_target == (method == "supervised")


def test_get_objective_lambda_inv():
    assert get_objective(make_config("noise2same", "YX", lambda_inv=0.95)).lambda_inv == 0.95
    override = get_objective(make_config("noise2same", "YX"), lambda_inv=0.4)
    assert override.lambda_inv == 0.4
    auto = make_config("noise2same", "YX", lambda_inv="auto")
    with pytest.raises(SelfDenoiseError, match="auto"):
        get_objective(auto)
    assert get_objective(auto, lambda_inv=lambda_inv_from_sigma(0.3)).lambda_inv == 0.6
    assert get_objective(auto, lambda_inv=1.0, joint_forward=False).joint_forward is False


@pytest.mark.parametrize("method", ["noise2same", "n2v", "n2v2", "noise2self"])
def test_objectives_train_in_3d(method):
    config = make_config(method, "ZYX", masking={"fraction": 0.05}, **_fixed_lambda(method))
    if method == "n2v":
        config.masking = dataclasses.replace(config.masking, struct_axis=-3)
    objective = get_objective(config)
    network = nn.Conv3d(1, 1, 3, padding=1)
    x = torch.randn((2, 1, 8, 12, 12), generator=_generator(9))
    loss, logs = objective.training_loss(network, x, _generator(10))
    loss.backward()
    assert torch.isfinite(loss) and logs
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert torch.isfinite(network.weight.grad).all()
    assert torch.isfinite(objective.validation_loss(network, x, _generator(11)))
