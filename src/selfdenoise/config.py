"""Typed, validated settings: the one source of defaults.

A :class:`DenoiserConfig` holds everything needed to rebuild, train and apply a model. It
round-trips through plain JSON (:meth:`DenoiserConfig.to_dict` / :meth:`DenoiserConfig.from_dict`)
so that model files never need pickle.

Per-method defaults (network shape, masking, recipe) are declared with each method in
:mod:`selfdenoise.registry` and applied by :func:`make_config`; explicit user settings always
win over them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from ._errors import SelfDenoiseError
from .registry import get_method, method_names

METHODS = method_names()
"""Training objectives, in the order the front ends list them (from :mod:`selfdenoise.registry`)."""

DEFAULT_METHOD = "neighbor2neighbor"
"""The method used when none is named: the fastest to converge on a CPU (issue #6,
``docs/benchmarks.md``); Noise2Same and the blind-spot methods stay one argument away."""

BATCH_SIZE_2D = 16
"""Batch size of the measured CPU recipe in 2D (sixteen 64x64 patches)."""

BATCH_SIZE_3D = 4
"""Batch size of the measured CPU recipe in 3D: four 16x64x64 patches are already 4x the
voxels of sixteen 64x64 ones, and more, smaller steps converge faster on a CPU."""


def cpu_batch(ndim: int) -> int:
    """Batch of the measured CPU recipe: what an unset batch becomes on the CPU and MPS."""
    return BATCH_SIZE_3D if ndim == 3 else BATCH_SIZE_2D


DEMO_METHODS = (DEFAULT_METHOD, "noise2same")
"""Methods ``selfdenoise demo`` trains, one after the other."""

MASK_MODES = ("stratified", "bernoulli", "grid")
FILLS = ("gaussian", "donut", "uniform", "median", "zero")
SCHEDULES = ("cosine", "onecycle", "step", "plateau", "constant")
NORMALISATIONS = ("meanstd", "percentile")
BLENDS = ("crop", "hann")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")

ARCHITECTURES = {"unet": "selfdenoise.nets.unet:UNet"}
"""Network architectures by name: ``'module:class'`` of each (imported when a network is
built, so this table stays torch-free). Another architecture is one more entry."""

MAX_BASE_CHANNELS = 256
"""Largest ``base_channels`` a configuration accepts (the parameter count is bounded too)."""


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SelfDenoiseError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def _check_positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise SelfDenoiseError(f"{name} must be a positive number; got {value!r}.")


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SelfDenoiseError(f"{name} must be an integer; got {value!r}.")


def _check_shape(name: str, value: tuple[int, ...] | None) -> None:
    if value is None:
        return
    if not all(isinstance(v, int) and v > 0 for v in value):
        raise SelfDenoiseError(f"{name} must be positive integers, e.g. 64,64; got {value!r}.")


@dataclass
class NetworkConfig:
    """Shape of the N-dimensional U-Net (:mod:`selfdenoise.nets`).

    Parameters
    ----------
    architecture : str
        A name in :data:`ARCHITECTURES`; ``'unet'`` is the only one for now.
    depth : int
        Number of down-sampling levels; inputs are padded to a multiple of ``2**depth``.
    base_channels : int
        Feature channels at the top level, doubled at each level down.
    batch_norm : bool
        BatchNorm after each convolution.
    residual_blocks : bool
        Pre-activation residual blocks (Noise2Same) instead of plain double convolutions.
    blurpool : bool
        N2V2's max-pool at stride 1 followed by a [1, 2, 1] blur at stride 2.
    top_skip : bool
        Keep the skip connection at the top level (N2V2 removes it).
    kernel_size : int
        Convolution kernel side.
    """

    architecture: str = "unet"
    depth: int = 2
    base_channels: int = 32
    batch_norm: bool = False
    residual_blocks: bool = False
    blurpool: bool = False
    top_skip: bool = True
    kernel_size: int = 3

    def validate(self) -> None:
        _check_choice("architecture", self.architecture, tuple(ARCHITECTURES))
        _check_int("depth", self.depth)
        if not 1 <= self.depth <= 6:
            raise SelfDenoiseError(f"network depth must be between 1 and 6; got {self.depth}.")
        _check_int("base_channels", self.base_channels)
        if not 1 <= self.base_channels <= MAX_BASE_CHANNELS:
            raise SelfDenoiseError(
                f"base_channels must be between 1 and {MAX_BASE_CHANNELS}; got {self.base_channels}."
            )
        if self.kernel_size not in (3, 5):
            raise SelfDenoiseError(f"kernel_size must be 3 or 5; got {self.kernel_size}.")


@dataclass
class MaskingConfig:
    """Which pixels are hidden from the network in a training step, and what replaces them.

    Parameters
    ----------
    mode : {'stratified', 'bernoulli', 'grid'}
        ``stratified``: one random pixel per box, box chosen so that the masked fraction is
        ``fraction`` in any number of dimensions. ``bernoulli``: each pixel masked with
        probability ``fraction``. ``grid``: Noise2Self phase cycling with period ``grid_period``.
    fraction : float
        Fraction of pixels masked per step (0.005 = 0.5 %).
    fill : {'gaussian', 'donut', 'uniform', 'median', 'zero'}
        Replacement: N(0, ``fill_sigma``) noise, mean of the neighbours, a uniform random
        neighbour (N2V), the neighbourhood median without the centre (N2V2), or zero.
    fill_sigma : float
        Standard deviation of the gaussian fill, in normalised units.
    window : int
        Side of the neighbourhood that uniform/median fills draw from (centre excluded).
    grid_period : int
        Period of the grid mask.
    struct_axis : int or None
        structN2V: also mask a line through each masked pixel along this spatial axis
        (-1 = X, -2 = Y, -3 = Z) for noise correlated along that direction.
    struct_span : int
        Length of that line, centred on the masked pixel.
    """

    mode: str = "stratified"
    fraction: float = 0.005
    fill: str = "gaussian"
    fill_sigma: float = 0.2
    window: int = 5
    grid_period: int = 4
    struct_axis: int | None = None
    struct_span: int = 5

    def validate(self) -> None:
        _check_choice("masking mode", self.mode, MASK_MODES)
        _check_choice("mask fill", self.fill, FILLS)
        if not 0.0 < self.fraction <= 0.5:
            raise SelfDenoiseError(
                f"masked fraction must be in (0, 0.5]; got {self.fraction} (use 0.005 for 0.5 %)."
            )
        if self.window < 3 or self.window % 2 == 0:
            raise SelfDenoiseError(f"mask window must be an odd number >= 3; got {self.window}.")
        if self.struct_axis is not None and self.struct_axis not in (-1, -2, -3):
            raise SelfDenoiseError("struct_axis must be -1 (X), -2 (Y) or -3 (Z), or None.")
        if self.grid_period < 2:
            raise SelfDenoiseError(f"grid_period must be >= 2; got {self.grid_period}.")


@dataclass
class TrainingConfig:
    """How long and how a model is trained (:mod:`selfdenoise.train`).

    Parameters
    ----------
    patch_shape : tuple of int or None
        Spatial patch shape; ``None`` picks 64x64 in 2D and 16x64x64 in 3D.
    batch_size : int or None
        Patches per step; ``None`` (default) = chosen for the device when training starts
        (:func:`selfdenoise.device.sized_for_device`): the measured CPU recipe on the CPU and
        MPS (:data:`BATCH_SIZE_2D` = 16 in 2D, :data:`BATCH_SIZE_3D` = 4 in 3D), a batch
        that fills the free memory on CUDA. A number is always used as given.
    steps : int or None
        Optimiser steps of one run (one :meth:`~selfdenoise.Denoiser.fit`). ``None`` =
        ``epochs * steps_per_epoch``, or no step limit under a time budget.
    epochs : int or None
        Budget in epochs when neither ``steps`` nor ``max_minutes`` is given; ``None`` = no
        epoch limit (then ``max_minutes`` is required).
    steps_per_epoch : int
        An epoch is ``steps_per_epoch`` steps (validation runs once per epoch).
    max_minutes : float or None
        Wall-clock budget; training stops when it is spent. Without ``steps`` it is the only
        budget (no epoch limit) and the learning-rate schedule is stretched over it.
    learning_rate, weight_decay : float
        AdamW settings.
    schedule : {'cosine', 'onecycle', 'step', 'plateau', 'constant'}
        Learning-rate schedule over the budget.
    grad_clip : float or None
        Clip the gradient norm to this value.
    early_stopping : int or None
        Stop after this many validations without improvement.
    validation_fraction : float
        Fraction of patches held out for the validation loss.
    checkpoint_every : int or None
        Save a resumable checkpoint every N steps into ``checkpoint_dir``.
    seed : int
        Seed for sampling, masking and initialisation; same seed, same result on CPU.
    device : {'auto', 'cpu', 'cuda', 'mps'}
        ``auto`` picks CUDA, then MPS, then CPU.
    amp : {'auto', 'off', 'bf16', 'fp16'}
        Mixed precision; ``auto`` = bf16 on CUDA where supported, else fp16 on CUDA, off elsewhere.
    augment : bool
        Random rot90/flips in YX.
    skip_background : float
        Reject patches whose standard deviation is below this quantile of all patches (0 = off).
    num_threads : int or None
        CPU threads for torch (``None``: torch's default).
    channels_last : bool or None
        Train in the channels-last memory format; ``None`` (auto) = on for CPU and CUDA, off on
        MPS. On this project's 2-core CPU reference machine it makes a training step 1.4x (2D)
        to 1.5x (3D) faster.
    compile : bool
        Compile the network with ``torch.compile`` (CUDA only; ignored with a one-line note
        elsewhere). Off by default: its gain for this U-Net has not been measured yet, and the
        first steps take tens of seconds to compile.
    """

    patch_shape: tuple[int, ...] | None = None
    batch_size: int | None = None
    steps: int | None = None
    epochs: int | None = 10
    steps_per_epoch: int = 50
    max_minutes: float | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    grad_clip: float | None = 1.0
    early_stopping: int | None = None
    validation_fraction: float = 0.1
    checkpoint_every: int | None = None
    checkpoint_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    augment: bool = True
    skip_background: float = 0.0
    num_threads: int | None = None
    channels_last: bool | None = None
    compile: bool = False

    def validate(self) -> None:
        _check_shape("patch_shape", self.patch_shape)
        if not isinstance(self.compile, bool):
            raise SelfDenoiseError(f"compile must be true or false; got {self.compile!r}.")
        _check_positive("batch_size", self.batch_size, allow_none=True)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size)
        _check_positive("steps", self.steps, allow_none=True)
        _check_positive("epochs", self.epochs, allow_none=True)
        _check_positive("steps_per_epoch", self.steps_per_epoch)
        _check_positive("max_minutes", self.max_minutes, allow_none=True)
        _check_positive("learning_rate", self.learning_rate)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("device", self.device, DEVICES)
        _check_choice("amp", self.amp, AMP_MODES)
        if not 0.0 <= self.validation_fraction < 0.9:
            raise SelfDenoiseError("validation_fraction must be in [0, 0.9).")
        if not 0.0 <= self.skip_background < 1.0:
            raise SelfDenoiseError("skip_background must be a quantile in [0, 1).")
        if self.steps is None and self.epochs is None and self.max_minutes is None:
            raise SelfDenoiseError("give a budget: steps, epochs or max_minutes.")
        _check_positive("checkpoint_every", self.checkpoint_every, allow_none=True)
        if self.checkpoint_every and not self.checkpoint_dir:
            raise SelfDenoiseError(
                "checkpoint_every needs checkpoint_dir (the folder to write checkpoints to)."
            )

    @property
    def total_steps(self) -> int | None:
        """Step budget of one run: ``steps``, else ``None`` (no step limit) under a time
        budget, else ``epochs * steps_per_epoch``."""
        if self.steps is not None:
            return self.steps
        if self.max_minutes is not None or self.epochs is None:
            return None
        return self.epochs * self.steps_per_epoch


@dataclass
class NormalisationConfig:
    """How intensities are scaled before the network and restored after.

    Parameters
    ----------
    kind : {'meanstd', 'percentile'}
        Subtract the mean and divide by the standard deviation, or map the low/high
        percentiles to 0/1.
    low_percentile, high_percentile : float
        Percentiles for ``percentile`` normalisation.
    """

    kind: str = "meanstd"
    low_percentile: float = 1.0
    high_percentile: float = 99.8

    def validate(self) -> None:
        _check_choice("normalisation", self.kind, NORMALISATIONS)
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise SelfDenoiseError("normalisation percentiles must satisfy 0 <= low < high <= 100.")


@dataclass
class TilingConfig:
    """Tiled prediction (:mod:`selfdenoise.tiling`).

    Parameters
    ----------
    tile_shape : tuple of int or None
        Spatial tile shape; ``None`` chooses from the receptive field and free memory.
    overlap : tuple of int or None
        Halo on each side of a tile; ``None`` = the network's receptive-field radius.
    tile_batch_size : int or None
        Tiles per forward pass; ``None`` chooses from memory.
    blend : {'crop', 'hann'}
        ``crop`` keeps each tile's valid core (equal to whole-image prediction when the overlap
        covers the receptive field); ``hann`` blends overlapping tiles with a smooth window.
    tta : bool
        Average the 8 flips/rotations in YX (8x the cost).
    half : {'auto', 'off', 'bf16', 'fp16'}
        Reduced precision on CUDA; ``auto`` uses bf16/fp16 on CUDA only.
    """

    tile_shape: tuple[int, ...] | None = None
    overlap: tuple[int, ...] | None = None
    tile_batch_size: int | None = None
    blend: str = "crop"
    tta: bool = False
    half: str = "auto"

    def validate(self) -> None:
        _check_shape("tile_shape", self.tile_shape)
        if self.overlap is not None and not all(int(v) >= 0 for v in self.overlap):
            raise SelfDenoiseError(f"overlap must be non-negative integers; got {self.overlap!r}.")
        _check_positive("tile_batch_size", self.tile_batch_size, allow_none=True)
        _check_choice("blend", self.blend, BLENDS)
        _check_choice("half", self.half, AMP_MODES)


@dataclass
class DenoiserConfig:
    """All settings of a :class:`selfdenoise.Denoiser`.

    Parameters
    ----------
    method : str
        A registered method (:func:`selfdenoise.registry.method_names`).
    axes : str
        Axes of the training data, e.g. ``'YX'``, ``'ZYX'``, ``'TYX'``, ``'CZYX'``.
    lambda_inv : float or 'auto'
        Noise2Same invariance weight; ``'auto'`` (default) = 2 * the noise sigma estimated on
        the normalised input (the paper's rule; about 0.6-0.8 for natural images with Gaussian
        sigma 25 after per-image standardisation). The official code's fixed 2 assumes the
        standardised input is all noise and over-weights the invariance term on real images
        (-0.6 dB at equal steps on Set12 crops, issue #13).
    channels_jointly : bool
        With a C axis: one network sees all channels (True) or each channel is denoised
        on its own by a shared single-channel network (False).
    """

    method: str = DEFAULT_METHOD
    axes: str = "YX"
    lambda_inv: float | str = "auto"
    channels_jointly: bool = True
    network: NetworkConfig = field(default_factory=NetworkConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)

    def validate(self) -> DenoiserConfig:
        """Check every setting; raise :class:`SelfDenoiseError` with a one-line message."""
        get_method(self.method)
        from .axes import validate_axes

        validate_axes(self.axes)
        if isinstance(self.lambda_inv, str):
            if self.lambda_inv != "auto":
                raise SelfDenoiseError("lambda_inv must be a number or 'auto'.")
        else:
            check_lambda_inv(self.lambda_inv)
        for section in (self.network, self.masking, self.training, self.normalisation, self.tiling):
            section.validate()
        if self.masking.struct_axis == -3 and self.ndim == 2:
            raise SelfDenoiseError(
                f"struct_axis -3 (Z) needs 3D data; the axes {self.axes!r} have no Z."
            )
        return self

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (3 when the axes contain Z)."""
        return 3 if "Z" in self.axes.upper() else 2

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenoiserConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys or bad values are one-line errors.

        Raises
        ------
        SelfDenoiseError
            ``data`` is not a dictionary, has unknown keys, or a value of the wrong type or
            out of range (the same rules as :func:`make_config`).
        """
        if not isinstance(data, dict):
            raise SelfDenoiseError(
                f"the model configuration must be a dictionary; got {type(data).__name__}."
            )
        try:
            return cls._from_dict(data)
        except (TypeError, ValueError, AttributeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SelfDenoiseError(f"invalid model configuration ({message}).") from None

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> DenoiserConfig:
        sections = {
            "network": NetworkConfig,
            "masking": MaskingConfig,
            "training": TrainingConfig,
            "normalisation": NormalisationConfig,
            "tiling": TilingConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in sections:
                kwargs[key] = _section_from_dict(sections[key], value)
            elif key in {f.name for f in fields(cls)}:
                kwargs[key] = value
            else:
                raise SelfDenoiseError(f"unknown setting {key!r} in model configuration.")
        return cls(**kwargs).validate()


def check_lambda_inv(value: Any) -> None:
    """Raise unless ``value`` is a finite number >= 0 (Noise2Same's invariance weight)."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SelfDenoiseError(f"lambda_inv must be a finite number >= 0; got {value!r}.")
    if value < 0:
        raise SelfDenoiseError(f"lambda_inv must be >= 0; got {value}.")


_TUPLE_FIELDS = {"patch_shape", "tile_shape", "overlap"}


def _section_from_dict(section_cls: type, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise SelfDenoiseError(f"{section_cls.__name__} settings must be a dictionary.")
    names = {f.name for f in fields(section_cls)}
    unknown = set(data) - names
    if unknown:
        raise SelfDenoiseError(f"unknown setting(s) {sorted(unknown)} for {section_cls.__name__}.")
    values = {
        k: (tuple(int(x) for x in v) if k in _TUPLE_FIELDS and v is not None else v)
        for k, v in data.items()
    }
    return section_cls(**values)


_SECTION_NAMES = ("network", "masking", "training", "normalisation", "tiling")


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
        if key in sections:
            if isinstance(value, dict):
                sections[key].update(value)
                continue
            raise SelfDenoiseError(f"setting {key!r} must be a dictionary of {key} options.")
        if key in {"lambda_inv", "channels_jointly"}:
            top[key] = value
            continue
        owner = owners.get(key)
        if owner is None:
            raise SelfDenoiseError(f"unknown setting {key!r}; see DenoiserConfig for valid names.")
        if isinstance(owner, tuple):
            raise SelfDenoiseError(
                f"setting {key!r} is ambiguous; pass it as {owner[0]}={{'{key}': ...}}."
            )
        if key in _TUPLE_FIELDS and value is not None:
            value = tuple(int(v) for v in value)
        sections[owner][key] = value
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


_SECTION_CLASSES: dict[str, type] = {
    "network": NetworkConfig,
    "masking": MaskingConfig,
    "training": TrainingConfig,
    "normalisation": NormalisationConfig,
    "tiling": TilingConfig,
}


def _field_owners() -> dict[str, str | tuple[str, ...]]:
    owners: dict[str, list[str]] = {}
    for section, cls in _SECTION_CLASSES.items():
        for f in fields(cls):
            owners.setdefault(f.name, []).append(section)
    return {k: (v[0] if len(v) == 1 else tuple(v)) for k, v in owners.items()}


FROZEN_SECTIONS = ("network", "normalisation")
"""Sections that cannot change once a model has weights (they shape the network and data)."""


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
    top = {"lambda_inv": config.lambda_inv, "channels_jointly": config.channels_jointly}
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
    if key in {"lambda_inv", "channels_jointly"}:
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
