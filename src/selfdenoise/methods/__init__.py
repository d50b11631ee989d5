"""Training objectives, one module per method (torch).

:func:`get_objective` builds the :class:`Objective` for a :class:`~selfdenoise.config.DenoiserConfig`.
"""

from __future__ import annotations

from .._errors import SelfDenoiseError
from ..config import DenoiserConfig
from .base import Objective, masked_mse, masked_pixel_loss, validation_masking
from .neighbor2neighbor import Neighbor2Neighbor
from .noise2same import Noise2Same, lambda_inv_from_sigma, noise2same_loss
from .noise2self import Noise2Self
from .noise2void import N2V2, Noise2Void
from .supervised import Supervised

__all__ = [
    "N2V2",
    "Neighbor2Neighbor",
    "Noise2Same",
    "Noise2Self",
    "Noise2Void",
    "Objective",
    "Supervised",
    "get_objective",
    "lambda_inv_from_sigma",
    "masked_mse",
    "masked_pixel_loss",
    "noise2same_loss",
    "validation_masking",
]


def get_objective(
    config: DenoiserConfig, lambda_inv: float | None = None, joint_forward: bool = True
) -> Objective:
    """Build the training objective of ``config.method``.

    Parameters
    ----------
    config : DenoiserConfig
        Method, masking settings and (for Noise2Same) ``lambda_inv``.
    lambda_inv : float, optional
        Noise2Same invariance weight; overrides ``config.lambda_inv``. Required when
        ``config.lambda_inv == 'auto'``: the caller estimates the noise level and passes
        :func:`lambda_inv_from_sigma` of it.
    joint_forward : bool
        Noise2Same only: both passes in one network call (see :class:`Noise2Same`).

    Returns
    -------
    Objective
        :class:`Noise2Same`, :class:`Noise2Void`, :class:`N2V2`, :class:`Noise2Self`,
        :class:`Neighbor2Neighbor` or :class:`Supervised`.

    Raises
    ------
    SelfDenoiseError
        For an unknown method, or Noise2Same with ``lambda_inv='auto'`` left unresolved.
    """
    method = config.method
    if method == "noise2same":
        weight = config.lambda_inv if lambda_inv is None else lambda_inv
        if weight == "auto":
            raise SelfDenoiseError(
                "lambda_inv='auto' must be resolved to a number before training "
                "(estimate the noise sigma and pass lambda_inv_from_sigma(sigma))."
            )
        return Noise2Same(config.masking, float(weight), joint_forward=joint_forward)
    if method == "n2v":
        return Noise2Void(config.masking)
    if method == "n2v2":
        return N2V2(config.masking)
    if method == "noise2self":
        return Noise2Self(config.masking)
    if method == "neighbor2neighbor":
        return Neighbor2Neighbor(config.masking)
    if method == "supervised":
        return Supervised()
    raise SelfDenoiseError(f"unknown method {method!r}.")
