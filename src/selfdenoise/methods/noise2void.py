"""Noise2Void (Krull et al. 2019), N2V2 (Hoeck et al. 2022) and structN2V: blind-spot training.

A few pixels ``J`` (stratified, 2 % by default) are replaced by a neighbour drawn uniformly
from a window around them minus the centre (N2V) or by the median of that window minus
the centre (N2V2), and the network is trained to predict their original values:

.. math:: \\mathcal{L} = \\frac{1}{|J|\\,C} \\sum_{i \\in J} \\sum_c
          \\bigl(f(x_J)_{ic} - x_{ic}\\bigr)^2 .

The loss mask is built from the chosen coordinates, never from ``x_J != x`` (a fill may
equal the original value). structN2V (``masking.struct_axis``) also hides a line of
``struct_span`` pixels through each chosen pixel along the axis of correlated noise; only
the line centres are scored. N2V2's network changes (BlurPool, no top skip) live in
:mod:`selfdenoise.nets`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MaskingConfig
from .base import Objective, masked_pixel_loss

__all__ = ["N2V2", "Noise2Void"]


class Noise2Void(Objective):
    """Noise2Void objective: masked-pixel MSE with a uniform-neighbour fill.

    Parameters
    ----------
    masking : MaskingConfig
        Mask and fill; ``fill='uniform'`` for N2V, ``struct_axis`` for structN2V.
    """

    name = "n2v"
    needs_target = False

    def __init__(self, masking: MaskingConfig) -> None:
        super().__init__(masking)

    def training_loss(
        self, network: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked-pixel MSE of one batch; logs ``masked_mse``."""
        loss = masked_pixel_loss(network, batch, self.masking, generator)
        return loss, {"masked_mse": loss.detach()}


class N2V2(Noise2Void):
    """N2V2 objective: Noise2Void with the median fill (``masking.fill='median'``)."""

    name = "n2v2"
