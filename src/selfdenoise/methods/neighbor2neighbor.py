"""Neighbor2Neighbor (Huang et al., CVPR 2021): self-supervision from neighbour sub-sampling.

Every 2x2 cell of the YX plane gives two *different, adjacent* pixels at random; collecting
the first and the second pixel of every cell builds two half-resolution images ``g1(x)`` and
``g2(x)`` whose clean content is nearly the same and whose noise is independent. Where the
noise is shared by neighbours in Y or X (a camera's demosaicing or binning, smoothing before
saving), such pairs share noise too and the network learns to keep it;
``neighbour_pairs='diagonal'`` draws the two diagonal pixels of each cell instead
(:data:`NEIGHBOUR_PAIRS`). With
``o = f(x)`` computed without gradient on the full image,

.. math:: \\mathcal{L} = \\lVert f(g_1 x) - g_2 x \\rVert^2 + \\gamma\\,
          \\lVert f(g_1 x) - g_2 x - (g_1 o - g_2 o) \\rVert^2 ,

both means over all pixels and channels. There is no blind spot and no pixel is wasted:
every half-resolution pixel is scored. A step costs one no-grad pass on the patch plus a
forward/backward pass on a quarter of its pixels, about half the work of a Noise2Void step.
``gamma`` ramps linearly from 0 to ``gamma_max`` (2 in the paper) over the training budget
(:meth:`Neighbor2Neighbor.set_progress`, called by the training loop); by default
``gamma_max`` is read from the training data's noise (:func:`regulariser_weight_from_noise`). In 3D the sub-sampling
acts on YX in every Z plane. Prediction is one unmasked pass ``f(x)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .._errors import SelfDenoiseError
from ..config import MaskingConfig
from .base import Objective

__all__ = [
    "NEIGHBOUR_PAIRS",
    "PAPER_REGULARISER_WEIGHT",
    "PHOTON_LIMITED",
    "Neighbor2Neighbor",
    "neighbour_pair_indices",
    "neighbour_pairs_from_noise",
    "neighbour_subsample",
    "regulariser_weight_from_noise",
]

PAPER_REGULARISER_WEIGHT = 2.0
"""The paper's ``gamma_max``."""

PHOTON_LIMITED = 0.5
"""Photon-noise fraction (:func:`~selfdenoise.metrics.photon_noise_fraction`) from which
``regulariser_weight='auto'`` trains without the regulariser."""


def regulariser_weight_from_noise(photon_fraction: float) -> float:
    """Regulariser weight for ``regulariser_weight='auto'``: 0 for photon-limited data.

    The regulariser ties the full-resolution output to the half-resolution training pairs;
    it keeps edges and fine texture of natural images with signal-independent noise (0
    instead of 2 lost 0.05-0.48 dB on five of six scikit-image crops with Gaussian noise,
    and up to 0.87 on Set12). On photon-limited data it costs instead: 0 gained 0.14-0.49 dB
    on all eight real fluorescence captures tried (FMD) and 0.08-0.14 on natural images with
    photon noise, at 3273 steps (docs/benchmarks.md, "Regulariser weight from the noise").
    Without it a step also skips the full-resolution pass and costs half as much or less.

    Parameters
    ----------
    photon_fraction : float
        Share of the noise variance that grows with the signal, from
        :func:`~selfdenoise.metrics.photon_noise_fraction` on the raw training data.

    Returns
    -------
    float
        0 when ``photon_fraction >= PHOTON_LIMITED``, else :data:`PAPER_REGULARISER_WEIGHT`.
    """
    return 0.0 if _photon_limited(photon_fraction) else PAPER_REGULARISER_WEIGHT


def neighbour_pairs_from_noise(photon_fraction: float) -> str:
    """Pixel pairs for ``neighbour_pairs='auto'``: diagonal ones for photon-limited data.

    Photon-limited data are, in practice, camera and scanner captures, whose neighbouring
    pixels share a little noise (the FMD widefield captures: neighbour correlation 0.19-0.21
    of the noise on bright structures). Diagonal pairs scored higher on seven of eight real
    fluorescence captures at 3273 steps (+0.03 to +1.40 dB; five held out from the
    benchmarks; confocal FISH -0.04) and on all three FMD benchmark pairs at 1 and 3
    CPU-minutes (+0.15 to +0.28), and lower on photon noise added to natural images, which
    is independent between pixels (-0.09, -0.13), as on Gaussian noise (-0.06 on average;
    docs/benchmarks.md, "Diagonal pairs").

    Parameters
    ----------
    photon_fraction : float
        Share of the noise variance that grows with the signal, from
        :func:`~selfdenoise.metrics.photon_noise_fraction` on the raw training data.

    Returns
    -------
    str
        ``'diagonal'`` when ``photon_fraction >= PHOTON_LIMITED``, else ``'adjacent'``.
    """
    return "diagonal" if _photon_limited(photon_fraction) else "adjacent"


def _photon_limited(photon_fraction: float) -> bool:
    """``photon_fraction >= PHOTON_LIMITED``, after checking that it is a fraction."""
    if not 0.0 <= photon_fraction <= 1.0:
        raise SelfDenoiseError(f"photon_fraction must be in [0, 1]; got {photon_fraction!r}.")
    return photon_fraction >= PHOTON_LIMITED


# Cell pixels numbered 0=(0,0), 1=(0,1), 2=(1,0), 3=(1,1).
_PAIRS = {
    "adjacent": torch.tensor([[0, 1], [1, 0], [0, 2], [2, 0], [1, 3], [3, 1], [2, 3], [3, 2]]),
    "diagonal": torch.tensor([[0, 3], [3, 0], [1, 2], [2, 1]]),
}
NEIGHBOUR_PAIRS = tuple(_PAIRS)
"""Which two pixels of a 2x2 cell form a training pair: ``'adjacent'`` (the paper's: the two
are neighbours in Y or in X) or ``'diagonal'`` (neighbours across the cell's diagonal; for
noise shared by Y and X neighbours, which adjacent pairs would share too)."""


def neighbour_pair_indices(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device | str | None = None,
    pairs: str = "adjacent",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random neighbour pairs, one per 2x2 YX cell, shared by the channels.

    Parameters
    ----------
    shape : tuple of int
        Batch shape ``(B, C, *spatial)`` with even Y and X.
    generator : torch.Generator
        Source of randomness (drawn on the generator's device, then moved).
    device : torch.device or str, optional
        Device of the returned indices.
    pairs : {'adjacent', 'diagonal'}
        Which pixels of a cell pair up (:data:`NEIGHBOUR_PAIRS`).

    Returns
    -------
    first, second : torch.Tensor
        Long tensors ``(B, 1, *cells, 1)`` with values in 0..3 (cell pixels in row order),
        ``first != second`` and the two pixels adjacent in Y or X (``'adjacent'``) or
        diagonal neighbours (``'diagonal'``); ``cells`` is the spatial shape with Y and X
        halved.
    """
    if pairs not in _PAIRS:
        raise SelfDenoiseError(f"neighbour_pairs must be one of {NEIGHBOUR_PAIRS}; got {pairs!r}.")
    choices = _PAIRS[pairs]
    cells = (*shape[2:-2], shape[-2] // 2, shape[-1] // 2)
    draws = torch.randint(
        len(choices), (shape[0], 1, *cells), generator=generator, device=generator.device
    ).cpu()
    pairs_drawn = choices[draws]  # (B, 1, *cells, 2)
    if device is not None and torch.device(device).type == "cuda":  # no wait for the GPU
        pairs_drawn = pairs_drawn.pin_memory().to(device, non_blocking=True)
    elif device is not None:
        pairs_drawn = pairs_drawn.to(device)
    return pairs_drawn[..., :1], pairs_drawn[..., 1:]


def _cells(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, *lead, H, W)`` -> ``(B, C, *lead, H/2, W/2, 4)``."""
    *lead, height, width = x.shape
    split = x.reshape(*lead, height // 2, 2, width // 2, 2)
    n = split.ndim
    order = (*range(n - 4), n - 4, n - 2, n - 3, n - 1)
    return split.permute(order).reshape(*lead, height // 2, width // 2, 4)


def neighbour_subsample(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick one pixel per 2x2 YX cell of ``x`` (the sub-sampler ``g`` of the paper).

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C, *spatial)`` with even Y and X.
    index : torch.Tensor
        ``(B, 1, *cells, 1)`` from :func:`neighbour_pair_indices`.

    Returns
    -------
    torch.Tensor
        ``(B, C, *spatial)`` with Y and X halved.
    """
    cells = _cells(x)
    expanded = index.expand(*cells.shape[:-1], 1)
    return torch.gather(cells, -1, expanded)[..., 0]


def _crop_even(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop Y and X to multiples of ``2 * multiple`` (the network's size multiple)."""
    step = 2 * multiple
    height, width = (x.shape[-2] // step) * step, (x.shape[-1] // step) * step
    if height == 0 or width == 0:
        raise SelfDenoiseError(
            f"Neighbor2Neighbor needs patches of at least {step}x{step} pixels in YX; "
            f"got {x.shape[-2]}x{x.shape[-1]}."
        )
    return x[..., :height, :width]


def _size_multiple(network: nn.Module) -> int:
    module = network.module if hasattr(network, "module") else network
    return int(getattr(module, "size_multiple", 1))


class Neighbor2Neighbor(Objective):
    """Neighbor2Neighbor objective.

    Parameters
    ----------
    masking : MaskingConfig
        Used only by the validation loss (masked-pixel MSE, as for every method).
    regulariser_weight : float
        Final weight of the regulariser, ``gamma_max`` (2 in the paper;
        :attr:`~selfdenoise.config.DenoiserConfig.regulariser_weight`). At 0 a step skips
        the full-resolution pass.
    ramp : float
        Fraction of the budget over which ``gamma`` grows from 0 to ``gamma_max``.
    neighbour_pairs : {'adjacent', 'diagonal'}
        Which pixels of each 2x2 cell form the training pair (:data:`NEIGHBOUR_PAIRS`;
        :attr:`~selfdenoise.config.DenoiserConfig.neighbour_pairs`).

    Attributes
    ----------
    progress : float
        Fraction of the training budget spent (set by the training loop); 1 when unknown,
        so a stand-alone call uses the full regulariser.
    """

    name = "neighbor2neighbor"
    needs_target = False

    def __init__(
        self,
        masking: MaskingConfig,
        regulariser_weight: float = PAPER_REGULARISER_WEIGHT,
        ramp: float = 1.0,
        neighbour_pairs: str = "adjacent",
    ) -> None:
        super().__init__(masking)
        if not regulariser_weight >= 0 or not ramp > 0:
            raise SelfDenoiseError("regulariser_weight must be >= 0 and ramp > 0.")
        if neighbour_pairs not in _PAIRS:
            raise SelfDenoiseError(
                f"neighbour_pairs must be one of {NEIGHBOUR_PAIRS}; got {neighbour_pairs!r}."
            )
        self.neighbour_pairs = neighbour_pairs
        self.gamma_max = float(regulariser_weight)
        self.ramp = float(ramp)
        self.progress = 1.0

    def set_progress(self, fraction: float) -> None:
        """Tell the objective how much of the budget is spent (0..1); ramps ``gamma``."""
        self.progress = min(max(float(fraction), 0.0), 1.0)

    @property
    def gamma(self) -> float:
        """Current regulariser weight."""
        return self.gamma_max * min(1.0, self.progress / self.ramp)

    def training_loss(
        self, network: nn.Module, batch: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Neighbor2Neighbor loss of one batch; logs ``reconstruction`` and ``regulariser``."""
        batch = _crop_even(batch, _size_multiple(network))
        first, second = neighbour_pair_indices(
            tuple(batch.shape), generator, batch.device, self.neighbour_pairs
        )
        sub1, sub2 = neighbour_subsample(batch, first), neighbour_subsample(batch, second)
        gamma = self.gamma
        output = network(sub1).float()
        difference = output - sub2.float()
        reconstruction = (difference**2).mean()
        regulariser = torch.zeros((), device=batch.device)
        if gamma > 0:
            with torch.no_grad():
                full = network(batch).float()
            gap = neighbour_subsample(full, first) - neighbour_subsample(full, second)
            regulariser = ((difference - gap) ** 2).mean()
        loss = reconstruction + gamma * regulariser
        logs = {"reconstruction": reconstruction.detach(), "regulariser": regulariser.detach()}
        return loss, logs

    def __repr__(self) -> str:
        return (
            f"Neighbor2Neighbor(gamma_max={self.gamma_max}, ramp={self.ramp}, "
            f"neighbour_pairs={self.neighbour_pairs!r}, masking={self.masking!r})"
        )
