"""Supervised training (Noise2Noise, CARE): MSE between ``f(x)`` and a target.

.. math:: \\mathcal{L} = \\frac{1}{N C} \\sum_{i, c} \\bigl(f(x)_{ic} - y_{ic}\\bigr)^2

with ``y`` a second independent noisy capture of the same scene (Noise2Noise) or a clean
image (CARE-style). Batches are ``(input, target)`` pairs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._errors import SelfDenoiseError
from .base import Objective

__all__ = ["Supervised"]


class Supervised(Objective):
    """Supervised objective on ``(input, target)`` batches."""

    name = "supervised"
    needs_target = True

    def __init__(self) -> None:
        super().__init__(masking=None)

    def training_loss(
        self, network: nn.Module, batch: Any, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MSE of ``network(input)`` against ``target``; logs ``mse``."""
        loss = self._mse(network, batch)
        return loss, {"mse": loss.detach()}

    def validation_loss(
        self, network: nn.Module, batch: Any, generator: torch.Generator
    ) -> torch.Tensor:
        """MSE against the target, without gradient (``generator`` is unused)."""
        with torch.no_grad():
            return self._mse(network, batch)

    @staticmethod
    def _mse(network: nn.Module, batch: Any) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise SelfDenoiseError(
                "supervised training needs (input, target) pairs; give a target image."
            )
        source, target = batch
        if source.shape != target.shape:
            raise SelfDenoiseError(
                f"input {tuple(source.shape)} and target {tuple(target.shape)} differ in shape."
            )
        return ((network(source).float() - target.float()) ** 2).mean()

    def __repr__(self) -> str:
        return "Supervised()"
