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
        For an unknown method, or ``lambda_inv='auto'`` (Noise2Same) or
        ``regulariser_weight='auto'`` (Neighbor2Neighbor) left unresolved.
    """
    spec = get_method(config.method)
    kwargs = {name: getattr(config, name) for name in spec.objective_options}
    kwargs.update({k: v for k, v in options.items() if v is not None})
    if kwargs.get("lambda_inv") == "auto":
        raise SelfDenoiseError(
            "lambda_inv='auto' must be resolved to a number before training "
            "(estimate the noise sigma and pass lambda_inv_from_sigma(sigma))."
        )
    if kwargs.get("regulariser_weight") == "auto":
        raise SelfDenoiseError(
            "regulariser_weight='auto' must be resolved to a number before training (pass "
            "regulariser_weight_from_noise(photon_noise_fraction(raw image)))."
        )
    if kwargs.get("neighbour_pairs") == "auto":
        raise SelfDenoiseError(
            "neighbour_pairs='auto' must be resolved before training (pass "
            "neighbour_pairs_from_noise(photon_noise_fraction(raw image)))."
        )
    objective_class = spec.objective_class()
    if spec.needs_target:
        return objective_class(**kwargs)
    return objective_class(config.masking, **kwargs)
