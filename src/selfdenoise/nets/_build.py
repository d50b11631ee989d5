"""Building networks from a :class:`~selfdenoise.config.NetworkConfig` (torch).

Kept apart from :mod:`selfdenoise.nets.unet`, which imports nothing but torch so that exported
BioImage Model Zoo packages can ship it unchanged as their architecture file.
"""

from __future__ import annotations

import torch
from torch import nn

from .._errors import SelfDenoiseError
from ..config import ARCHITECTURES, NetworkConfig
from ._cost import count_parameters
from .unet import UNet, _check_ndim

__all__ = ["MAX_PARAMETERS", "architecture_class", "build_network"]

MAX_PARAMETERS = 200_000_000
"""Most parameters a network may have (800 MB of float32 weights, 3x that while training);
checked before any memory is allocated, so a model file cannot ask for terabytes."""


def build_network(
    config: NetworkConfig, ndim: int, in_channels: int, out_channels: int | None = None
) -> UNet:
    """Build the U-Net described by ``config``.

    Parameters
    ----------
    config : NetworkConfig
        Depth, channels and options (see :class:`selfdenoise.config.NetworkConfig`).
    ndim : int
        Number of spatial dimensions, 2 or 3.
    in_channels : int
        Channels of the input tensor.
    out_channels : int, optional
        Channels of the output; defaults to ``in_channels``.

    Returns
    -------
    UNet
        A module in training mode on the CPU, initialised from torch's global RNG (so
        ``torch.manual_seed`` makes it reproducible).

    Examples
    --------
    >>> from selfdenoise.config import NetworkConfig
    >>> net = build_network(NetworkConfig(depth=2, base_channels=8), ndim=2, in_channels=1)
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 1, 32, 32])
    """
    config.validate()
    _check_ndim(ndim)
    if in_channels < 1 or (out_channels is not None and out_channels < 1):
        raise ValueError("in_channels and out_channels must be positive.")
    network_class = architecture_class(config.architecture)
    out_channels = in_channels if out_channels is None else out_channels
    with torch.device("meta"):  # count the parameters before allocating them
        planned = count_parameters(network_class(config, ndim, in_channels, out_channels))
    if planned > MAX_PARAMETERS:
        raise SelfDenoiseError(
            f"this network would have {planned:,} parameters (limit {MAX_PARAMETERS:,}); "
            "use fewer base_channels or a smaller depth."
        )
    return network_class(config, ndim, in_channels, out_channels)


def architecture_class(name: str) -> type[nn.Module]:
    """The network class registered as ``name`` in :data:`selfdenoise.config.ARCHITECTURES`."""
    import importlib

    module_name, _, class_name = ARCHITECTURES[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
