"""All settings of a model: :class:`DenoiserConfig` and its JSON round trip."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from .._errors import SelfDenoiseError
from ..registry import get_method
from ._choices import (
    DEFAULT_METHOD,
    NEIGHBOUR_PAIRS,
    check_lambda_inv,
    check_regulariser_weight,
)
from ._sections import (
    MaskingConfig,
    NetworkConfig,
    NormalisationConfig,
    TilingConfig,
    TrainingConfig,
    _section_from_dict,
)


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
        Noise2Same invariance weight; ``'auto'`` (default) = 2 * the RMS noise sigma
        estimated on the normalised input, over up to 16 planes spread across all training
        images (the paper's rule, with
        :func:`selfdenoise.metrics.estimate_noise_rms` so that photon noise on bright
        structures counts; about 0.6-0.8 for natural images with Gaussian sigma 25 after
        per-image standardisation, 0.8-1.3 for FMD's real fluorescence captures). The
        official code's fixed 2 assumes the standardised input is all noise and
        over-weights the invariance term on real images (-0.6 dB at equal steps on Set12
        crops, issue #13).
    regulariser_weight : float or 'auto'
        Neighbor2Neighbor's regulariser weight (the paper's gamma), reached at the end of a
        linear ramp over the training budget. ``'auto'`` (default) reads the training data's
        noise at the start of a fit: 0 for photon-limited data (a photon-noise fraction of
        at least 0.5, :func:`~selfdenoise.metrics.photon_noise_fraction` at the 90th
        percentile of the raw values, over up to 16 planes spread across the training
        images), else the paper's 2. The regulariser keeps edges and fine texture of natural
        images with signal-independent noise (0 instead of 2 lost up to 0.87 dB on Set12);
        on photon-limited captures it costs instead (0 gained 0.14-0.49 dB on eight real
        fluorescence images), and at 0 a step skips the full-resolution pass. The value used
        is :attr:`selfdenoise.Denoiser.regulariser_weight` (docs/benchmarks.md,
        "Regulariser weight from the noise").
    neighbour_pairs : {'auto', 'adjacent', 'diagonal'}
        Which two pixels of each 2x2 cell Neighbor2Neighbor pairs: ``'adjacent'`` (the
        paper's: neighbours in Y or X) or ``'diagonal'``, for noise shared by neighbouring
        pixels in Y or X (a camera's demosaicing or binning, images smoothed or resized
        before saving), where adjacent pairs share noise too and the network learns to keep
        it. ``'auto'`` (default) reads the training data's noise with the regulariser
        weight's rule: diagonal pairs for photon-limited data, which in practice are camera
        and scanner captures, else adjacent ones
        (:func:`~selfdenoise.methods.neighbor2neighbor.neighbour_pairs_from_noise`); the
        pairs used are :attr:`selfdenoise.Denoiser.neighbour_pairs`. On crops with noise
        smoothed along X diagonal pairs scored 2.0-4.9 dB above adjacent ones, and 0.03-1.40
        dB above on seven of eight real fluorescence captures; on noise independent between
        pixels 0.06 dB below on average (-0.43 to +0.37 on six natural images;
        docs/benchmarks.md, "Diagonal pairs").
    channels_jointly : bool
        With a C axis: one network sees all channels (True) or each channel is denoised
        on its own by a shared single-channel network (False).
    """

    method: str = DEFAULT_METHOD
    axes: str = "YX"
    lambda_inv: float | str = "auto"
    regulariser_weight: float | str = "auto"
    neighbour_pairs: str = "auto"
    channels_jointly: bool = True
    network: NetworkConfig = field(default_factory=NetworkConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    normalisation: NormalisationConfig = field(default_factory=NormalisationConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)

    def validate(self) -> DenoiserConfig:
        """Check every setting; raise :class:`SelfDenoiseError` with a one-line message."""
        get_method(self.method)
        from ..axes import validate_axes

        validate_axes(self.axes)
        if isinstance(self.lambda_inv, str):
            if self.lambda_inv != "auto":
                raise SelfDenoiseError("lambda_inv must be a number or 'auto'.")
        else:
            check_lambda_inv(self.lambda_inv)
        if isinstance(self.regulariser_weight, str):
            if self.regulariser_weight != "auto":
                raise SelfDenoiseError("regulariser_weight must be a number >= 0 or 'auto'.")
        else:
            check_regulariser_weight(self.regulariser_weight)
        if self.neighbour_pairs not in ("auto", *NEIGHBOUR_PAIRS):
            raise SelfDenoiseError(
                f"neighbour_pairs must be 'auto' or one of {', '.join(NEIGHBOUR_PAIRS)}; "
                f"got {self.neighbour_pairs!r}."
            )
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
