"""One N-dimensional U-Net for 2D and 3D images.

Layout (channels at level ``l`` are ``base_channels * 2**l``, level ``depth`` is the bottleneck)::

    input -> [stem] -> block_0 ---------------------- skip ---------------- concat -> block_0 -> 1x1
                          down                                               up
                          block_1 ----- skip ---- concat -> block_1 -------> ...
                             down                   up
                             bottleneck ------------'

Design choices, all driven by :class:`selfdenoise.config.NetworkConfig`:

- **Blocks**: two ``kernel_size`` convolutions with ReLU (``conv-[BN]-ReLU`` twice), or with
  ``residual_blocks`` a pre-activation residual block as in Noise2Same's official network
  (``[BN]-ReLU-conv`` twice plus a shortcut, 1x1 conv where the channel count changes). The
  residual variant starts with a plain "stem" convolution so that the first pre-activation acts
  on features, not on the raw image, and ends with ``[BN]-ReLU`` before the output layer.
- **Down-sampling**: 2x max-pooling. It has no weights and no multiply-adds, which makes it the
  fastest choice on CPU (Noise2Same's stride-2 convolution costs as much as a full convolution
  at the lower resolution). With ``blurpool`` (N2V2) it is max-pooling at stride 1 followed by
  a fixed ``[1, 2, 1]`` blur (outer product over all axes, sum 1) at stride 2, which reduces
  aliasing and the checkerboard artefacts of blind-spot training.
- **Up-sampling**: a 1x1 convolution that halves the channels at the coarse level, then
  (bi/tri)linear 2x up-sampling. A 1x1 convolution commutes with linear up-sampling, so this
  equals "upsample + 1x1 conv" at a quarter (2D) or an eighth (3D) of the cost. Unlike
  transposed convolutions it cannot create checkerboard patterns, and unlike nearest
  up-sampling it leaves no 2**depth blocks when an objective leans on coarse features
  (measured on the built-in sample, Noise2Same 250 steps: blockiness 1.58 -> 1.08, +0.35 dB).
- **Top skip**: the full-resolution skip connection can be dropped (``top_skip=False``, N2V2).
- **Output**: a final 1x1 convolution with a linear output (no activation).

Per-method defaults live in :mod:`selfdenoise.registry`: Noise2Same uses
residual blocks with batch norm; N2V2 uses blurpool without the top skip; N2V and Noise2Self
use the plain network (depth 2, 32 base channels, no batch norm).

Convolutions zero-pad, so every output pixel depends only on input pixels within
:func:`receptive_radius` of it (with batch norm in eval mode; in training mode batch statistics
couple all pixels of a batch). Tiled prediction uses that radius as its default overlap.

This file imports nothing but torch, so that model packages for the BioImage Model Zoo can
ship it unchanged as their architecture source (:class:`ImageDenoiser` is the entry point).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # this file imports only torch: BMZ packages ship it as the architecture
    from ..config import NetworkConfig

__all__ = ["ImageDenoiser", "UNet", "receptive_radius", "size_multiple"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _check_ndim(ndim: int) -> None:
    if ndim not in (2, 3):
        raise ValueError(f"the U-Net supports 2 or 3 spatial dimensions; got ndim={ndim}.")


def _level_channels(config: NetworkConfig) -> list[int]:
    return [config.base_channels * 2**level for level in range(config.depth + 1)]


def _conv(ndim: int, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
    return _CONV[ndim](in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ConvBlock(nn.Module):
    """Two convolutions, each followed by optional batch norm and ReLU."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, config: NetworkConfig):
        super().__init__()
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            layers.append(
                _conv(ndim, channels_in, out_channels, config.kernel_size, not config.batch_norm)
            )
            if config.batch_norm:
                layers.append(_NORM[ndim](out_channels))
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _pre_activation(ndim: int, channels: int, batch_norm: bool) -> nn.Module:
    if batch_norm:
        return nn.Sequential(_NORM[ndim](channels), nn.ReLU())
    return nn.ReLU()


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``([BN]-ReLU-conv) x 2`` plus a shortcut."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, config: NetworkConfig):
        super().__init__()
        k, bn = config.kernel_size, config.batch_norm
        self.residual = nn.Sequential(
            _pre_activation(ndim, in_channels, bn),
            _conv(ndim, in_channels, out_channels, k, bias=not bn),
            _pre_activation(ndim, out_channels, bn),
            _conv(ndim, out_channels, out_channels, k),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = _conv(ndim, in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class MaxPool(nn.Module):
    """2x max-pooling in 2D or 3D."""

    def __init__(self, ndim: int):
        super().__init__()
        self.ndim = ndim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.max_pool2d if self.ndim == 2 else F.max_pool3d
        return pool(x, kernel_size=2, stride=2)


class BlurPool(nn.Module):
    """N2V2's down-sampling: max-pool at stride 1, then a [1, 2, 1] blur at stride 2.

    Borders are replicated so the output is exactly half the (even) input size.
    """

    def __init__(self, ndim: int, channels: int):
        super().__init__()
        self.ndim = ndim
        self.channels = channels
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps
        for _ in range(ndim - 1):
            kernel = kernel[..., None] * taps
        kernel = kernel / kernel.sum()
        weight = kernel.expand(channels, 1, *kernel.shape).contiguous()
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ndim == 2:
            x = F.max_pool2d(x, kernel_size=2, stride=1)
        else:
            x = F.max_pool3d(x, kernel_size=2, stride=1)
        x = F.pad(x, (1, 1) * self.ndim, mode="replicate")
        conv = F.conv2d if self.ndim == 2 else F.conv3d
        return conv(x, self.weight.to(x.dtype), stride=2, groups=self.channels)


def _channels_last_gradient(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


class Upsample(nn.Module):
    """1x1 convolution at the coarse level, then linear 2x up-sampling."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int):
        super().__init__()
        self.reduce = _conv(ndim, in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "bilinear" if x.ndim == 4 else "trilinear"
        out = F.interpolate(self.reduce(x), scale_factor=2, mode=mode, align_corners=False)
        channels_last = out.ndim == 4 and out.is_contiguous(memory_format=torch.channels_last)
        if out.requires_grad and out.device.type == "cpu" and channels_last:
            # In 2D the gradient comes back through the decoder's concatenation as a channel
            # slice, which the CPU bilinear backward takes through its slow NCHW path (3-4x
            # slower, 6-8 % of a training step); hand it a channels-last copy instead. Same
            # values. No gain measured in 3D; CUDA (and torch.compile, CUDA only) untouched.
            out.register_hook(_channels_last_gradient)
        return out


class UNet(nn.Module):
    """N-dimensional U-Net mapping ``(B, in_channels, *spatial)`` to ``(B, out_channels, *spatial)``.

    Build it with :func:`build_network`. Spatial sizes must be multiples of
    :attr:`size_multiple` (``2**depth``); callers reflect-pad.
    """

    def __init__(self, config: NetworkConfig, ndim: int, in_channels: int, out_channels: int):
        super().__init__()
        self.config = config
        self.ndim = ndim
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.size_multiple = size_multiple(config)
        channels = _level_channels(config)
        block = ResidualBlock if config.residual_blocks else ConvBlock

        self.stem: nn.Module = nn.Identity()
        block_in = in_channels
        if config.residual_blocks:
            self.stem = _conv(ndim, in_channels, channels[0], config.kernel_size)
            block_in = channels[0]

        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for level in range(config.depth):
            self.encoders.append(block(ndim, block_in, channels[level], config))
            if config.blurpool:
                self.downs.append(BlurPool(ndim, channels[level]))
            else:
                self.downs.append(MaxPool(ndim))
            block_in = channels[level]
        self.bottleneck = block(ndim, block_in, channels[-1], config)

        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(config.depth):
            merged = channels[level] * (2 if self._has_skip(level) else 1)
            self.ups.append(Upsample(ndim, channels[level + 1], channels[level]))
            self.decoders.append(block(ndim, merged, channels[level], config))

        self.final_activation: nn.Module = nn.Identity()
        if config.residual_blocks:
            self.final_activation = _pre_activation(ndim, channels[0], config.batch_norm)
        self.head = _conv(ndim, channels[0], out_channels, 1)
        _initialise(self)

    @property
    def receptive_radius(self) -> int:
        """Halo in pixels beyond which the input cannot change an output pixel
        (:func:`receptive_radius`); the overlap tiled prediction needs."""
        return receptive_radius(self.config, self.ndim)

    def _has_skip(self, level: int) -> bool:
        return level > 0 or self.config.top_skip

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.ndim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a (B, {self.in_channels}, {', '.join('ZYX'[-self.ndim :])}) tensor; "
                f"got shape {tuple(x.shape)}."
            )
        spatial = tuple(x.shape[2:])
        if any(size % self.size_multiple for size in spatial):
            raise ValueError(
                f"spatial shape {spatial} is not a multiple of {self.size_multiple} "
                f"(2**depth); reflect-pad the input to a multiple first."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x = self.stem(x)
        skips: list[torch.Tensor | None] = []
        for level, (encoder, down) in enumerate(zip(self.encoders, self.downs, strict=True)):
            x = encoder(x)
            skips.append(x if self._has_skip(level) else None)
            x = down(x)
        x = self.bottleneck(x)
        for level in reversed(range(self.config.depth)):
            x = self.ups[level](x)
            skip = skips[level]
            if skip is not None:
                x = torch.cat([x, skip], dim=1)
            x = self.decoders[level](x)
        return self.head(self.final_activation(x))


def _initialise(network: nn.Module) -> None:
    """He-normal weights for convolutions followed by ReLU, zero biases (uses torch's RNG)."""
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def size_multiple(config: NetworkConfig) -> int:
    """Spatial multiple the network input must have: ``2**depth``."""
    return 2**config.depth


def receptive_radius(config: NetworkConfig, ndim: int) -> int:
    """Halo, in pixels on each side, beyond which the input cannot change an output pixel.

    Follows the support of one output pixel through the network: each ``k``-convolution at
    level ``l`` widens it by ``(k - 1) / 2 * 2**l`` on both sides, max-pooling adds ``2**l``
    on one side, blurpool ``2**l`` and ``2 * 2**l``, and linear up-sampling ``2 * 2**l`` on
    both sides (it reads the two nearest coarse pixels). The result is exact for the worst-placed pixel and an upper bound for all
    (the same in every spatial axis, so ``ndim`` does not change it).

    Parameters
    ----------
    config : NetworkConfig
        Network settings.
    ndim : int
        Number of spatial dimensions, 2 or 3.

    Returns
    -------
    int
        Radius in pixels; use it as the overlap of tiled prediction.
    """
    _check_ndim(ndim)
    half = config.kernel_size // 2
    block_halo = 2 * half  # two convolutions per block; shortcuts are 1x1
    low = high = half if config.residual_blocks else 0  # stem convolution
    for level in range(config.depth):
        step = 2**level
        low, high = low + block_halo * step, high + block_halo * step
        if config.blurpool:
            low, high = low + step, high + 2 * step
        else:
            high += step
    bottom = 2**config.depth
    low, high = low + block_halo * bottom, high + block_halo * bottom
    for level in reversed(range(config.depth)):
        step = 2**level
        low, high = low + 2 * step, high + 2 * step  # linear up-sampling: two coarse pixels
        low, high = low + block_halo * step, high + block_halo * step
    return int(max(low, high))


class ImageDenoiser(nn.Module):
    """A trained U-Net as a whole-image model, for files that leave this package.

    Maps ``(B, channels, *spatial)`` to the same shape, spatial sides multiples of
    ``2**depth``. It is the architecture of exported BioImage Model Zoo packages and the
    graph of ONNX and TorchScript exports.

    Parameters
    ----------
    ndim : int
        Spatial dimensions, 2 or 3.
    channels : int
        Image channels.
    network : dict
        The fields of :class:`selfdenoise.config.NetworkConfig`.
    fold_channels : bool
        Denoise each channel on its own with a one-channel U-Net (models trained with
        ``channels_jointly=False``).
    offset, scale : list of float, optional
        Per-channel normalisation ``(x - offset) / scale`` applied before the U-Net and
        undone after it; without them the model works on normalised images.
    """

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        ndim: int,
        channels: int,
        network: dict,
        fold_channels: bool = False,
        offset: list[float] | None = None,
        scale: list[float] | None = None,
    ):
        super().__init__()
        unet_channels = 1 if fold_channels else channels
        self.unet = UNet(SimpleNamespace(**network), ndim, unet_channels, unet_channels)
        self.fold_channels = fold_channels
        self.normalise = offset is not None and scale is not None
        if self.normalise:
            shape = (1, channels) + (1,) * ndim
            self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32).view(shape))
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            x = (x - self.offset) / self.scale
        if self.fold_channels:
            y = self.unet(x.reshape(-1, 1, *x.shape[2:])).reshape(x.shape)
        else:
            y = self.unet(x)
        if self.normalise:
            y = y * self.scale + self.offset
        return y
