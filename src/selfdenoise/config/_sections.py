"""The sections of a configuration: network, masking, training, normalisation, tiling."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .._errors import SelfDenoiseError
from ._choices import (
    AMP_MODES,
    ARCHITECTURES,
    BLENDS,
    FILLS,
    MASK_MODES,
    MAX_BASE_CHANNELS,
    NORMALISATIONS,
    SCHEDULES,
    _check_choice,
    _check_int,
    _check_positive,
    _check_shape,
    check_device_name,
)


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
        Mixed precision; ``auto`` = bf16 on CUDA where supported, else fp16 on CUDA; bf16 on
        CPUs with AMX (a training step 2-3x cheaper, same quality) and, for 2D models, on
        CPUs with AVX-512 BF16 (1.8-2.1x cheaper); off elsewhere.
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
        check_device_name(self.device)
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
    restore_detail : bool
        After prediction, blend each pixel with its noisy value where the output lost detail
        (a local Wiener step, :func:`selfdenoise.restore.restore_detail`), in each image where
        Stein's unbiased risk estimate expects it to lower the error. On by default for the
        masked methods and Noise2Same, whose outputs (nearly) ignore each pixel's own value;
        off for the others, and with structN2V masking (noise correlated between pixels).
    collaborative_filter : bool
        After prediction (and detail restoration), filter the noisy image again with the
        output as the pilot estimate: similar patches are grouped and shrunk together with
        an empirical Wiener gain (:func:`selfdenoise.collaborative.collaborative_wiener`),
        plane by plane. On by default for the self-supervised methods; off for supervised
        models, and with structN2V masking (noise correlated between pixels).
    """

    tile_shape: tuple[int, ...] | None = None
    overlap: tuple[int, ...] | None = None
    tile_batch_size: int | None = None
    blend: str = "crop"
    tta: bool = False
    half: str = "auto"
    restore_detail: bool = False
    collaborative_filter: bool = False

    def validate(self) -> None:
        _check_shape("tile_shape", self.tile_shape)
        for name in ("restore_detail", "collaborative_filter"):
            if not isinstance(getattr(self, name), bool):
                raise SelfDenoiseError(
                    f"{name} must be True or False; got {getattr(self, name)!r}."
                )
        if self.overlap is not None and not all(int(v) >= 0 for v in self.overlap):
            raise SelfDenoiseError(f"overlap must be non-negative integers; got {self.overlap!r}.")
        _check_positive("tile_batch_size", self.tile_batch_size, allow_none=True)
        _check_choice("blend", self.blend, BLENDS)
        _check_choice("half", self.half, AMP_MODES)


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

_SECTION_CLASSES: dict[str, type] = {
    "network": NetworkConfig,
    "masking": MaskingConfig,
    "training": TrainingConfig,
    "normalisation": NormalisationConfig,
    "tiling": TilingConfig,
}
