"""Training objectives, one module per method (torch).

:func:`get_objective` builds the :class:`Objective` for a :class:`~selfdenoise.config.DenoiserConfig`.
"""

from __future__ import annotations

from typing import Any

from .._errors import SelfDenoiseError
from ..config import DenoiserConfig
from ..registry import get_method
from .base import Objective, masked_mse, masked_pixel_loss, validation_masking
from .neighbor2neighbor import Neighbor2Neighbor
from .noise2same import Noise2Same, lambda_inv_from_sigma, noise2same_loss
from .noise2self import Noise2Self
from .noise2void import N2V2, Noise2Void
from .supervised import Supervised

__all__ = [
    "N2V2",
    "RESOLVED_FROM_DATA",
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


RESOLVED_FROM_DATA = {
    "lambda_inv": "to a number before training "
    "(estimate the noise sigma and pass lambda_inv_from_sigma(sigma)).",
    "regulariser_weight": "to a number before training (pass "
    "regulariser_weight_from_noise(photon_noise_fraction(raw image))).",
    "neighbour_pairs": "before training (pass "
    "neighbour_pairs_from_noise(photon_noise_fraction(raw image))).",
}
"""Objective options whose ``'auto'`` the API reads from the training data before a fit, and
how (the end of the error raised when one reaches :func:`get_objective` unresolved)."""


def get_objective(config: DenoiserConfig, **options: Any) -> Objective:
    """Build the training objective of ``config.method`` from the method registry.

    Parameters
    ----------
    config : DenoiserConfig
        Method, masking settings and the method's own options (e.g. ``lambda_inv``).
    **options
        Overrides of the method's ``objective_options`` (:class:`~selfdenoise.registry.MethodSpec`),
        e.g. a resolved ``lambda_inv`` when ``config.lambda_inv == 'auto'``, and extra
        constructor arguments such as Noise2Same's ``joint_forward``.

    Returns
    -------
    Objective
        An instance of the registered objective class.

    Raises
    ------
    SelfDenoiseError
        For an unknown method, or an ``'auto'`` setting (:data:`RESOLVED_FROM_DATA`) left
        unresolved.
    """
    spec = get_method(config.method)
    kwargs = {name: getattr(config, name) for name in spec.objective_options}
    kwargs.update({k: v for k, v in options.items() if v is not None})
    for name, how in RESOLVED_FROM_DATA.items():
        if kwargs.get(name) == "auto":
            raise SelfDenoiseError(f"{name}='auto' must be resolved {how}")
    objective_class = spec.objective_class()
    if spec.needs_target:
        return objective_class(**kwargs)
    return objective_class(config.masking, **kwargs)
