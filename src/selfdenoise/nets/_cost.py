"""What a U-Net costs: parameters and multiply-accumulates per pixel.

Apart from :mod:`selfdenoise.nets.unet`, which holds only what a saved model needs to run
(model packages ship that file unchanged as their architecture source).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .unet import _check_ndim, _level_channels

if TYPE_CHECKING:
    from torch import nn

    from ..config import NetworkConfig

__all__ = ["count_parameters", "flops_per_pixel"]


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (weights and biases, trainable or not) of ``module``."""
    return sum(parameter.numel() for parameter in module.parameters())


def _block_macs(config: NetworkConfig, ndim: int, in_channels: int, out_channels: int) -> int:
    taps = config.kernel_size**ndim
    macs = taps * in_channels * out_channels + taps * out_channels * out_channels
    if config.residual_blocks and in_channels != out_channels:
        macs += in_channels * out_channels
    return macs


def flops_per_pixel(
    config: NetworkConfig, ndim: int, in_channels: int, out_channels: int | None = None
) -> float:
    """Approximate multiply-accumulates per input pixel of one forward pass.

    Counts convolutions (including the blurpool filter); pooling, activations, batch norm and
    up-sampling are negligible and left out. Multiply by 2 for floating-point operations.

    Parameters
    ----------
    config : NetworkConfig
        Network settings.
    ndim : int
        Number of spatial dimensions, 2 or 3.
    in_channels : int
        Input channels.
    out_channels : int, optional
        Output channels; defaults to ``in_channels``.

    Returns
    -------
    float
        Multiply-accumulates per pixel (voxel in 3D).
    """
    _check_ndim(ndim)
    out_channels = in_channels if out_channels is None else out_channels
    channels = _level_channels(config)

    def fraction(level: int) -> float:
        return 2.0 ** (-level * ndim)

    macs = 0.0
    block_in = in_channels
    if config.residual_blocks:
        macs += config.kernel_size**ndim * in_channels * channels[0]
        block_in = channels[0]
    for level in range(config.depth):
        macs += _block_macs(config, ndim, block_in, channels[level]) * fraction(level)
        if config.blurpool:
            macs += 3**ndim * channels[level] * fraction(level + 1)
        block_in = channels[level]
    depth = config.depth
    macs += _block_macs(config, ndim, block_in, channels[depth]) * fraction(depth)
    for level in range(depth):
        merged = channels[level] * (2 if (level > 0 or config.top_skip) else 1)
        macs += channels[level + 1] * channels[level] * fraction(level + 1)
        macs += _block_macs(config, ndim, merged, channels[level]) * fraction(level)
    macs += channels[0] * out_channels
    return macs
