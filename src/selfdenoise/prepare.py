"""Training inputs made ready for a run: checked, canonical, normalised (numpy only).

:func:`prepare_training_data` turns the user's arrays (any supported axes, a list of arrays
of different shapes, optional targets and a separate validation source) into
:class:`TrainingData`: canonical ``(N, C, *spatial)`` float32 arrays normalised with the
model's :class:`~selfdenoise.data.Normaliser`. The training run
(:class:`selfdenoise.training.TrainingRun`) samples patches from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._errors import SelfDenoiseError
from .axes import Layout, to_canonical
from .config import DenoiserConfig, TrainingConfig
from .data import Normaliser, check_finite, check_image
from .patches import PatchSampler, fit_patch_shape

__all__ = ["TrainingData", "make_sampler", "normalise", "prepare_arrays", "prepare_training_data"]


@dataclass
class TrainingData:
    """Normalised canonical training inputs.

    Attributes
    ----------
    arrays : list of ndarray
        Training images, each ``(N, C, *spatial)`` float32.
    targets : list of ndarray or None
        Targets aligned with ``arrays`` (supervised training).
    validation : list of ndarray or None
        A separate validation source; ``None`` holds out part of ``arrays``.
    n_channels : int
        Channels the network sees.
    """

    arrays: list[np.ndarray]
    targets: list[np.ndarray] | None
    validation: list[np.ndarray] | None
    n_channels: int

    @property
    def spatial_shapes(self) -> list[tuple[int, ...]]:
        """Spatial shapes of every training and validation array (a patch must fit all)."""
        return [a.shape[2:] for a in self.arrays + (self.validation or [])]

    @property
    def training_voxels(self) -> int:
        """Voxels of the training arrays, every sample counted (channels not)."""
        return sum(a.shape[0] * math.prod(a.shape[2:]) for a in self.arrays)


def prepare_arrays(data, axes: str, channels_jointly: bool, name: str):
    """Check user inputs (one array or a list) and return ``(arrays, layouts)``.

    Raises
    ------
    SelfDenoiseError
        No input, a bad shape or dtype, a too small image, or NaN/infinite values.
    """
    items = list(data) if isinstance(data, list | tuple) else [data]
    if not items:
        raise SelfDenoiseError(f"no {name} given.")
    arrays, layouts = [], []
    for index, item in enumerate(items):
        label = name if len(items) == 1 else f"{name} {index + 1}"
        layout = check_image(item, axes, label)
        array = np.asarray(item)
        check_finite(array, label)
        arrays.append(array)
        layouts.append(Layout(layout.axes, layout.shape, channels_jointly))
    return arrays, layouts


def normalise(array: np.ndarray, layout: Layout, normaliser: Normaliser) -> np.ndarray:
    """Canonical ``(N, C, *spatial)`` float32 copy of ``array``, normalised per channel."""
    canonical, _ = to_canonical(array, layout.axes, layout.channels_jointly)
    bound = normaliser.bind(layout)
    return np.stack([bound.forward(canonical[n], n) for n in range(canonical.shape[0])])


def prepare_training_data(
    config: DenoiserConfig,
    data,
    *,
    axes: str,
    validation=None,
    targets=None,
    normaliser: Normaliser | None = None,
    in_channels: int | None = None,
) -> tuple[TrainingData, Normaliser]:
    """Check, canonicalise and normalise training inputs.

    Parameters
    ----------
    config : DenoiserConfig
        The model's settings (dimensionality, channel handling, normalisation).
    data, validation, targets : ndarray or sequence of ndarray
        The user's arrays with axes ``axes`` (validation and targets optional).
    axes : str
        Axes of every given array.
    normaliser : Normaliser, optional
        The model's normaliser; fitted on ``data`` when None (a new model).
    in_channels : int, optional
        Channels of an existing network; the data must match.

    Returns
    -------
    tuple
        ``(TrainingData, Normaliser)``.
    """
    jointly = config.channels_jointly
    arrays, layouts = prepare_arrays(data, axes, jointly, "training image")
    if layouts[0].ndim != config.ndim:
        raise SelfDenoiseError(
            f"axes {axes!r} are {layouts[0].ndim}D but the model is {config.ndim}D ({config.axes})."
        )
    n_channels = layouts[0].n_channels
    if any(layout.n_channels != n_channels for layout in layouts):
        raise SelfDenoiseError("all training images must have the same number of channels.")
    if in_channels is not None and n_channels != in_channels:
        raise SelfDenoiseError(
            f"this model takes {in_channels} channel(s) but the data has {n_channels}."
        )
    if normaliser is None:
        normaliser = Normaliser.fit(arrays, layouts, config.normalisation)

    def prepared(items, name: str) -> list[np.ndarray] | None:
        if items is None:
            return None
        raw, item_layouts = prepare_arrays(items, axes, jointly, name)
        if any(layout.n_channels != n_channels for layout in item_layouts):
            raise SelfDenoiseError(f"the {name} must have {n_channels} channel(s) like the data.")
        return [normalise(a, lay, normaliser) for a, lay in zip(raw, item_layouts, strict=True)]

    training = [normalise(a, lay, normaliser) for a, lay in zip(arrays, layouts, strict=True)]
    prepared_targets = prepared(targets, "target")
    if prepared_targets is not None and len(prepared_targets) != len(training):
        raise SelfDenoiseError("give one target per training image.")
    return (
        TrainingData(
            training, prepared_targets, prepared(validation, "validation image"), n_channels
        ),
        normaliser,
    )


def make_sampler(
    data: TrainingData, config: TrainingConfig, size_multiple: int, rank: int = 0
) -> PatchSampler:
    """Patch sampler over ``data``: patch shape fitted to every image, validation source."""
    patch_shape = fit_patch_shape(config.patch_shape, data.spatial_shapes, size_multiple)
    return PatchSampler(
        data.arrays,
        patch_shape,
        validation_fraction=0.0 if data.validation else config.validation_fraction,
        augment=config.augment,
        skip_background=config.skip_background,
        seed=config.seed + 1000 * rank,
        targets=data.targets,
        validation=data.validation,
    )
