"""The :class:`Objective` interface and the masked-pixel loss shared by all methods.

Noise2Self's observation (Batson & Royer 2019): for noise that is independent across pixels
with zero mean, the error of predicting a hidden pixel from the others,

.. math:: \\mathcal{L}_J(f) = \\frac{1}{|J|\\,C} \\sum_{i \\in J} \\sum_c
          \\bigl(f(x_J)_{ic} - x_{ic}\\bigr)^2,

where :math:`x_J` is ``x`` with the pixels of ``J`` replaced by a fill, equals the error
against the clean image plus a constant. It ranks models without clean data, so every
self-supervised method uses it as its validation loss (:meth:`Objective.validation_loss`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..config import MaskingConfig
from ..masking import mask_and_fill

__all__ = ["Objective", "masked_mse", "masked_pixel_loss", "validation_masking"]


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels and all channels.

    .. math:: \\frac{\\sum_{b,c,i} m_{bi} (p_{bci} - t_{bci})^2}{C \\sum_{b,i} m_{bi}}

    Parameters
    ----------
    prediction, target : torch.Tensor
        ``(B, C, *spatial)``; the difference is computed in float32.
    mask : torch.Tensor
        Boolean or 0/1 ``(B, 1, *spatial)``, broadcast over channels.

    Returns
    -------
    torch.Tensor
        Scalar; 0 (with a gradient path) when nothing is masked.
    """
    weights = mask.to(torch.float32)
    squared = (prediction.float() - target.float()) ** 2
    count = weights.sum() * prediction.shape[1]
    return (weights * squared).sum() / count.clamp(min=1.0)


def masked_pixel_loss(
    network: nn.Module,
    batch: torch.Tensor,
    masking_config: MaskingConfig,
    generator: torch.Generator,
    *,
    grid_phase: int | None = None,
) -> torch.Tensor:
    """Noise2Self masked-pixel loss: hide pixels, predict them, score only those pixels.

    Draws a mask and fills the hidden pixels with :func:`~selfdenoise.masking.mask_and_fill`
    (fixed shapes, no host-device synchronisation), runs ``network`` once on the filled batch
    and returns :func:`masked_mse` against ``batch`` on the chosen pixels (for structN2V,
    the line centres: the rest of each line is hidden but not scored).

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(B, C, *spatial)`` to the same shape.
    batch : torch.Tensor
        Noisy ``(B, C, *spatial)`` batch on the network's device.
    masking_config : MaskingConfig
        How to choose and fill the hidden pixels.
    generator : torch.Generator
        Source of randomness for the mask and the fill.
    grid_phase : int, optional
        Phase for grid masks (random when None).

    Returns
    -------
    torch.Tensor
        Scalar loss, differentiable with respect to the network's parameters.
    """
    masked_input, scored, _ = mask_and_fill(batch, masking_config, generator, grid_phase=grid_phase)
    return masked_mse(network(masked_input), batch, scored)


def validation_masking(masking_config: MaskingConfig) -> MaskingConfig:
    """Masking used for validation: the method's own settings with stratified sampling."""
    return dataclasses.replace(masking_config, mode="stratified")


class Objective:
    """A training objective: how one step's loss is computed from a batch.

    Attributes
    ----------
    name : str
        Method name, as in :data:`selfdenoise.config.METHODS`.
    needs_target : bool
        True when batches are ``(input, target)`` pairs (supervised training).
    masking : MaskingConfig or None
        Masking used in training and, made stratified, in validation.

    Notes
    -----
    Networks are called as ``network(x)`` on ``(B, C, *spatial)`` tensors. The caller sets
    ``network.train()`` / ``network.eval()`` and the autocast context; losses are computed
    in float32.
    """

    name: str = "objective"
    needs_target: bool = False

    def __init__(self, masking: MaskingConfig | None = None) -> None:
        self.masking = masking

    def training_loss(
        self, network: nn.Module, batch: Any, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one training step and its named components (for logs).

        Parameters
        ----------
        network : torch.nn.Module
            The model being trained.
        batch : torch.Tensor
            ``(B, C, *spatial)`` on the network's device (a pair for supervised methods).
        generator : torch.Generator
            Source of randomness for masks and fills.

        Returns
        -------
        loss : torch.Tensor
            Scalar to back-propagate.
        logs : dict of str to torch.Tensor
            Named loss components, detached 0-d tensors on the device (``float()`` reads one;
            that waits for the device, so the engine does not read them every step).
        """
        raise NotImplementedError

    def set_progress(self, fraction: float) -> None:
        """Hear how far training is (0..1 of the budget) before each step; no-op by default.

        Objectives whose loss changes over a run (e.g. Neighbor2Neighbor's regulariser
        ramp) override it.
        """

    def validation_loss(
        self, network: nn.Module, batch: Any, generator: torch.Generator
    ) -> torch.Tensor:
        """Masked-pixel loss (:func:`masked_pixel_loss`) with stratified masking, no gradient.

        Pass a generator seeded the same way at every validation so that successive values
        are comparable.
        """
        if self.masking is None:
            raise NotImplementedError(f"{type(self).__name__} must define validation_loss.")
        with torch.no_grad():
            return masked_pixel_loss(network, batch, validation_masking(self.masking), generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(masking={self.masking!r})"
