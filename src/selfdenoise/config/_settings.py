"""Building and changing configurations: :func:`make_config` and :func:`replace_settings`."""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any

from .._errors import SelfDenoiseError
from ..registry import get_method
from ._choices import DEFAULT_METHOD
from ._denoiser import DenoiserConfig
from ._sections import (
    _SECTION_CLASSES,
    _SECTION_NAMES,
    _TUPLE_FIELDS,
    MaskingConfig,
    NetworkConfig,
    NormalisationConfig,
    TilingConfig,
    TrainingConfig,
    _section_from_dict,
)


def make_config(method: str = DEFAULT_METHOD, axes: str = "YX", **settings: Any) -> DenoiserConfig:
    """Build a validated configuration from flat or nested keyword settings.

    Settings may be given flat (``patch_shape=(64, 64)``, ``depth=3``) or as whole sections
    (``training={'steps': 100}``). Flat names are looked up in every section; a name that is
    unknown or ambiguous is an error.

    Parameters
    ----------
    method : str
        Training objective, a registered method (:mod:`selfdenoise.registry`).
    axes : str
        Axes of the data, e.g. ``'YX'`` or ``'ZYX'``.
    **settings
        Overrides of any field of :class:`DenoiserConfig` or its sections.

    Returns
    -------
    DenoiserConfig
        Validated settings, with the method's defaults where the user said nothing.

    Examples
    --------
    >>> cfg = make_config("n2v2", "ZYX", patch_shape=(16, 64, 64), steps=200)
    >>> cfg.network.blurpool, cfg.training.steps
    (True, 200)
    """
    spec = get_method(method)
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTION_NAMES}
    for name, values in spec.defaults.items():
        sections[name].update(values)
    top: dict[str, Any] = {}
    owners = _field_owners()
    for key, value in settings.items():
        for section, name, resolved in _targets(key, value, owners):
            if section is None:
                top[name] = resolved
            else:
                sections[section][name] = resolved
    tiling_given = settings.get("tiling")
    for name in ("restore_detail", "collaborative_filter"):
        given = name in settings or (isinstance(tiling_given, dict) and name in tiling_given)
        if sections["masking"].get("struct_axis") is not None and not given:
            # structN2V declares noise correlated between pixels, which both steps read as
            # white (the restoration would partly give it back, the filter misjudge it).
            sections["tiling"][name] = False
    config = DenoiserConfig(
        method=method,
        axes=axes.upper(),
        **top,
        network=NetworkConfig(**sections["network"]),
        masking=MaskingConfig(**sections["masking"]),
        training=TrainingConfig(**sections["training"]),
        normalisation=NormalisationConfig(**sections["normalisation"]),
        tiling=TilingConfig(**sections["tiling"]),
    )
    return config.validate()


def _field_owners() -> dict[str, str | tuple[str, ...]]:
    owners: dict[str, list[str]] = {}
    for section, cls in _SECTION_CLASSES.items():
        for f in fields(cls):
            owners.setdefault(f.name, []).append(section)
    return {k: (v[0] if len(v) == 1 else tuple(v)) for k, v in owners.items()}


FROZEN_SECTIONS = ("network", "normalisation")
"""Sections that cannot change once a model has weights (they shape the network and data)."""

TOP_LEVEL_SETTINGS = ("lambda_inv", "regulariser_weight", "neighbour_pairs", "channels_jointly")
"""Settings of :class:`DenoiserConfig` itself (not of a section) that callers may give."""


def replace_settings(
    config: DenoiserConfig, *, frozen: bool = True, **settings: Any
) -> DenoiserConfig:
    """A new validated config: ``config`` with ``settings`` changed (``config`` is untouched).

    Parameters
    ----------
    config : DenoiserConfig
        The current settings.
    frozen : bool
        Refuse changes to :data:`FROZEN_SECTIONS`, ``axes``, ``method`` and
        ``channels_jointly`` (a model with weights).
    **settings
        Flat or sectioned settings as in :func:`make_config`.

    Returns
    -------
    DenoiserConfig
        The changed copy.

    Raises
    ------
    SelfDenoiseError
        For an unknown, invalid or (when ``frozen``) network-shaping setting.
    """
    locked = {"method", "axes", "channels_jointly"}
    sections = {name: dataclasses.asdict(getattr(config, name)) for name in _SECTION_NAMES}
    top = {name: getattr(config, name) for name in TOP_LEVEL_SETTINGS}
    owners = _field_owners()
    for key, value in settings.items():
        if key in locked:
            if value != getattr(config, key) and frozen:
                raise SelfDenoiseError(f"{key} cannot change once the model has weights.")
            continue
        targets = _targets(key, value, owners)
        for section, name, new in targets:
            if section is None:
                top[name] = new
                continue
            if frozen and section in FROZEN_SECTIONS and sections[section][name] != new:
                raise SelfDenoiseError(
                    f"{name} shapes the network and cannot change once the model has weights; "
                    "train a new model instead."
                )
            sections[section][name] = new
    changed = DenoiserConfig(
        method=config.method,
        axes=config.axes,
        **top,
        **{
            name: _section_from_dict(_SECTION_CLASSES[name], sections[name])
            for name in _SECTION_NAMES
        },
    )
    return changed.validate()


def _targets(key: str, value: Any, owners: dict) -> list[tuple[str | None, str, Any]]:
    """(section, field, value) triples that a flat or sectioned setting ``key`` stands for."""
    if key in _SECTION_NAMES:
        if not isinstance(value, dict):
            raise SelfDenoiseError(f"setting {key!r} must be a dictionary of {key} options.")
        names = {f.name for f in fields(_SECTION_CLASSES[key])}
        unknown = set(value) - names
        if unknown:
            raise SelfDenoiseError(f"unknown {key} setting(s) {sorted(unknown)}.")
        return [(key, name, _tuple_if_shape(name, v)) for name, v in value.items()]
    if key in TOP_LEVEL_SETTINGS:
        return [(None, key, value)]
    owner = owners.get(key)
    if owner is None:
        raise SelfDenoiseError(f"unknown setting {key!r}; see DenoiserConfig for valid names.")
    if isinstance(owner, tuple):
        raise SelfDenoiseError(
            f"setting {key!r} is ambiguous; pass it as {owner[0]}={{'{key}': ...}}."
        )
    return [(owner, key, _tuple_if_shape(key, value))]


def _tuple_if_shape(key: str, value: Any) -> Any:
    if key in _TUPLE_FIELDS and value is not None:
        return tuple(int(v) for v in value)
    return value
