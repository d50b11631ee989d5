"""Noise2Self (Batson & Royer 2019): J-invariant training with random or grid masks.

Each step hides a set ``J`` of pixels, Bernoulli with probability ``fraction`` or a grid
of period ``P`` whose phase cycles through all ``P**d`` offsets over consecutive steps,
fills them (donut interpolation by default, or zero) and scores only those pixels:

.. math:: \\mathcal{L} = \\frac{1}{|J|\\,C} \\sum_{i \\in J} \\sum_c
          \\bigl(f(x_J)_{ic} - x_{ic}\\bigr)^2 .
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import MaskingConfig
from .base import Objective, masked_pixel_loss

__all__ = ["Noise2Self"]


class Noise2Self(Objective):
    """Noise2Self objective.

    Parameters
    ----------
    masking : MaskingConfig
        ``mode`` ``'bernoulli'`` (default) or ``'grid'`` (``'stratified'`` also works);
        ``fill`` ``'donut'`` (default) or ``'zero'`` (any fill is accepted).

    Attributes
    ----------
    step : int
        Training steps taken; with grid masks the phase of step ``s`` is ``s % P**d``.
    """

    name = "noise2self"
    needs_target = False

    def __init__(self, masking: MaskingConfig) -> None:
        super().__init__(masking)
        self.step = 0

    def training_loss(
        self, network: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Masked-pixel MSE of one batch; logs ``masked_mse``."""
        grid_phase = None
        if self.masking.mode == "grid":
            grid_phase = self.step % self.masking.grid_period ** (batch.ndim - 2)
        loss = masked_pixel_loss(network, batch, self.masking, generator, grid_phase=grid_phase)
        self.step += 1
        return loss, {"masked_mse": loss.detach()}
