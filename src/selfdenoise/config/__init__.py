"""Typed, validated settings: the one source of defaults.

A :class:`DenoiserConfig` holds everything needed to rebuild, train and apply a model. It
round-trips through plain JSON (:meth:`DenoiserConfig.to_dict` / :meth:`DenoiserConfig.from_dict`)
so that model files never need pickle.

Per-method defaults (network shape, masking, recipe) are declared with each method in
:mod:`selfdenoise.registry` and applied by :func:`make_config`; explicit user settings always
win over them.

The settings live in a small package: :mod:`._choices` (choices, defaults and checks),
:mod:`._sections` (one dataclass per section), :mod:`._denoiser` (:class:`DenoiserConfig`)
and :mod:`._settings` (:func:`make_config`, :func:`replace_settings`). Everything is imported
from ``selfdenoise.config``.
"""

from ._choices import (
    AMP_MODES,
    ARCHITECTURES,
    BATCH_SIZE_2D,
    BATCH_SIZE_3D,
    BLENDS,
    DEFAULT_METHOD,
    DEMO_METHODS,
    DEVICES,
    FILLS,
    MASK_MODES,
    MAX_BASE_CHANNELS,
    METHODS,
    NEIGHBOUR_PAIRS,
    NORMALISATIONS,
    SCHEDULES,
    check_device_name,
    check_lambda_inv,
    check_regulariser_weight,
    cpu_batch,
)
from ._denoiser import DenoiserConfig
from ._sections import (
    MaskingConfig,
    NetworkConfig,
    NormalisationConfig,
    TilingConfig,
    TrainingConfig,
)
from ._settings import FROZEN_SECTIONS, make_config, replace_settings

__all__ = [
    "AMP_MODES",
    "ARCHITECTURES",
    "BATCH_SIZE_2D",
    "BATCH_SIZE_3D",
    "BLENDS",
    "DEFAULT_METHOD",
    "DEMO_METHODS",
    "DEVICES",
    "FILLS",
    "FROZEN_SECTIONS",
    "MASK_MODES",
    "MAX_BASE_CHANNELS",
    "METHODS",
    "NEIGHBOUR_PAIRS",
    "NORMALISATIONS",
    "SCHEDULES",
    "DenoiserConfig",
    "MaskingConfig",
    "NetworkConfig",
    "NormalisationConfig",
    "TilingConfig",
    "TrainingConfig",
    "check_device_name",
    "check_lambda_inv",
    "check_regulariser_weight",
    "cpu_batch",
    "make_config",
    "replace_settings",
]
