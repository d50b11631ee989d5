"""Noise2Same (Xie, Wang & Ji, NeurIPS 2020): reconstruction plus invariance to masking.

With ``o = f(x)`` and ``o_m = f(x_m)``, where ``x_m`` is ``x`` with the masked pixels
``J`` replaced by a fill, the loss is

.. math:: \\mathcal{L} = \\frac{1}{N C} \\sum_{i, c} (o_{ic} - x_{ic})^2
          + \\lambda_{inv} \\sqrt{\\frac{1}{|J| C} \\sum_{i \\in J} \\sum_c
          (o_{ic} - o_{m,ic})^2}.

The first term scores every pixel (no blind spot); the second keeps the network from
relying on a pixel's own noisy value. Both passes receive gradients, and both run in one
network call on the concatenated batch (channels-last when training is). Prediction is a
single unmasked pass ``f(x)``, followed by default by :func:`selfdenoise.restore.restore_detail`
(a local Wiener step that takes back detail the near-blind-spot output smoothed away).

Choosing :math:`\\lambda_{inv}`
-------------------------------
The loss bounds the supervised error because, by Cauchy-Schwarz,
:math:`E[(f(x)-f(x_J))_i\\, n_i] \\le \\sqrt{E(f(x)-f(x_J))_i^2}\\,\\sigma`, hence the paper's
:math:`\\lambda_{inv} = 2\\sigma` with :math:`\\sigma` the noise standard deviation of the
*normalised* input. For a network whose output leans on its own pixel with weight ``c``, the
reconstruction term rewards ``c`` by :math:`2c\\sigma^2` and the invariance term charges
:math:`\\lambda_{inv} c\\, s` with :math:`s` the RMS of ``x - fill`` at the masked pixels. With
the Gaussian fill, ``s`` holds the whole signal (about 1 after standardisation) while
:math:`\\sigma` is about 0.3-0.4 for natural images at Gaussian sigma 25: a fixed
:math:`\\lambda_{inv} = 2` charges ``c`` about 8x what it earns and drives the network to a
blind spot (own-pixel weight 0.004-0.03 measured), whose output detail anti-correlates with
the input's (:mod:`selfdenoise.diagnostics`). :math:`2\\sigma` (``lambda_inv='auto'``, the
default) charges it about 2.5x; :math:`2\\sigma^2/s` would make the charge unbiased
(own-pixel weight 0.23-0.29 and positive detail correlation measured, same PSNR at 300 steps).
The donut fill (the recipe's default) predicts the masked pixel from its neighbours, so
:math:`s` is close to :math:`\\sigma` and :math:`2\\sigma` is nearly unbiased: +0.5 dB over
the Gaussian fill at equal steps, own-pixel weight about 0.1, detail correlation positive.
"""

from __future__ import annotations

import torch
from torch import nn

from .._errors import SelfDenoiseError
from ..config import MaskingConfig
from ..masking import mask_and_fill
from .base import Objective, masked_mse

__all__ = ["Noise2Same", "lambda_inv_from_sigma", "noise2same_loss"]


def lambda_inv_from_sigma(sigma: float) -> float:
    """Invariance weight from the noise level: :math:`\\lambda_{inv} = 2 \\sigma`.

    Parameters
    ----------
    sigma : float
        Noise standard deviation of the normalised input (1 for pure noise after
        per-image standardisation, which gives the official default 2).

    Returns
    -------
    float
        ``2 * sigma``.
    """
    if not sigma >= 0:
        raise SelfDenoiseError(f"noise sigma must be a number >= 0; got {sigma!r}.")
    return 2.0 * float(sigma)


def noise2same_loss(
    output: torch.Tensor,
    output_masked: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    lambda_inv: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise2Same loss from the two passes.

    Parameters
    ----------
    output : torch.Tensor
        ``o = f(x)``, shape ``(B, C, *spatial)``.
    output_masked : torch.Tensor
        ``o_m = f(x_m)``, same shape.
    target : torch.Tensor
        The noisy input ``x``.
    mask : torch.Tensor
        ``(B, 1, *spatial)`` masked pixels, broadcast over channels (the denominator
        counts ``|J| * C`` values).
    lambda_inv : float
        Weight of the invariance term.

    Returns
    -------
    loss, reconstruction, invariance : torch.Tensor
        ``reconstruction + lambda_inv * invariance`` and the two terms. The mean under the
        square root is clamped at 1e-12 so that its gradient stays finite when ``o_m == o``.
    """
    reconstruction = ((output.float() - target.float()) ** 2).mean()
    invariance = masked_mse(output, output_masked, mask).clamp(min=1e-12).sqrt()
    return reconstruction + lambda_inv * invariance, reconstruction, invariance


class Noise2Same(Objective):
    """Noise2Same objective.

    Parameters
    ----------
    masking : MaskingConfig
        Mask (stratified; the method's default masks 10 %, the paper 0.5 %) and fill
        (gaussian N(0, 0.2) or donut). With ``struct_axis`` set the lines are filled and
        enter the invariance term.
    lambda_inv : float
        Invariance weight (see :func:`lambda_inv_from_sigma`).
    joint_forward : bool
        Run ``x`` and ``x_m`` through the network in one call on the concatenated batch
        (default; less overhead, one kernel launch per layer). BatchNorm in training mode
        then normalises with statistics of both halves together; set False for two separate
        calls, each with its own batch statistics.
    """

    name = "noise2same"
    needs_target = False

    def __init__(
        self, masking: MaskingConfig, lambda_inv: float, joint_forward: bool = True
    ) -> None:
        super().__init__(masking)
        if isinstance(lambda_inv, str) or not lambda_inv >= 0:
            raise SelfDenoiseError(f"lambda_inv must be a number >= 0; got {lambda_inv!r}.")
        self.lambda_inv = float(lambda_inv)
        self.joint_forward = joint_forward

    def training_loss(
        self, network: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Noise2Same loss of one batch; logs ``reconstruction`` and ``invariance``."""
        masked_input, _, mask = mask_and_fill(batch, self.masking, generator)
        if self.joint_forward:
            output, output_masked = network(torch.cat([batch, masked_input])).chunk(2)
        else:
            output, output_masked = network(batch), network(masked_input)
        loss, reconstruction, invariance = noise2same_loss(
            output, output_masked, batch, mask, self.lambda_inv
        )
        logs = {"reconstruction": reconstruction.detach(), "invariance": invariance.detach()}
        return loss, logs

    def __repr__(self) -> str:
        return (
            f"Noise2Same(lambda_inv={self.lambda_inv}, joint_forward={self.joint_forward}, "
            f"masking={self.masking!r})"
        )
