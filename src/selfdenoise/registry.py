"""The method registry: every training objective, declared once (no torch import).

A method is one module in :mod:`selfdenoise.methods` (its :class:`~selfdenoise.methods.Objective`,
torch code) plus one :func:`register_method` call at the bottom of this file. Everything else
is generated from the registry: the valid names and per-method defaults of
:func:`selfdenoise.config.make_config`, the command line's ``--method`` choices and help, and
the napari Train widget's method list, labels and summaries.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._errors import SelfDenoiseError

__all__ = ["MethodSpec", "get_method", "method_names", "register_method"]


@dataclass(frozen=True)
class MethodSpec:
    """What a training objective declares about itself.

    Parameters
    ----------
    name : str
        Identifier used in configs, files and the command line (``'n2v2'``).
    label : str
        Display name in the widgets (``'N2V2'``).
    summary : str
        One sentence for help texts; no trailing separator other than a full stop.
    objective : str
        ``'module:Class'`` of the objective inside :mod:`selfdenoise.methods`, imported
        only when a model is trained.
    defaults : mapping
        Per-section overrides of the config defaults, e.g.
        ``{'network': {'blurpool': True}, 'training': {'learning_rate': 3e-3}}``.
    needs_target : bool
        Batches are ``(input, target)`` pairs; not offered for self-supervised training.
    uses_masking : bool
        The masked fraction is a training setting of this method (shown in the widgets);
        when False the masking section only drives the validation loss.
    objective_options : tuple of str
        Top-level config fields passed to the objective's constructor by name
        (Noise2Same: ``('lambda_inv',)``; Neighbor2Neighbor: ``('regulariser_weight',
        'neighbour_pairs')``).
    citation : str
        The method's paper, for exported model packages and the docs.
    doi : str
        The paper's DOI (an arXiv DOI where the venue has none).
    """

    name: str
    label: str
    summary: str
    objective: str
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    needs_target: bool = False
    uses_masking: bool = True
    objective_options: tuple[str, ...] = ()
    citation: str = ""
    doi: str = ""

    @property
    def self_supervised(self) -> bool:
        """True when the method needs nothing but the noisy data."""
        return not self.needs_target

    def objective_class(self) -> type:
        """Import and return the objective class (imports torch)."""
        module_name, class_name = self.objective.split(":")
        module = importlib.import_module(f"selfdenoise.methods.{module_name}")
        return getattr(module, class_name)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (front ends list methods in registration order)."""
    if spec.name in _REGISTRY:
        raise SelfDenoiseError(f"method {spec.name!r} is already registered.")
    if spec.summary.rstrip().endswith((";", ",")):
        raise SelfDenoiseError(f"the summary of {spec.name!r} must end with a full stop.")
    frozen = {section: MappingProxyType(dict(values)) for section, values in spec.defaults.items()}
    _REGISTRY[spec.name] = MethodSpec(**{**spec.__dict__, "defaults": MappingProxyType(frozen)})
    return _REGISTRY[spec.name]


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name``; a one-line error names the valid ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise SelfDenoiseError(
            f"method must be one of {', '.join(_REGISTRY)}; got {name!r}."
        ) from None


def method_names(*, self_supervised: bool = False) -> tuple[str, ...]:
    """Registered method names in registration order (only self-supervised ones if asked)."""
    return tuple(
        name for name, spec in _REGISTRY.items() if spec.self_supervised or not self_supervised
    )


# ---------------------------------------------------------------------------------------------
# Registrations: one per method, in the order the front ends list them.
# ---------------------------------------------------------------------------------------------

register_method(
    MethodSpec(
        name="neighbor2neighbor",
        label="Neighbor2Neighbor",
        summary="Train on random neighbour sub-samples; no blind spot, fastest on CPU.",
        objective="neighbor2neighbor:Neighbor2Neighbor",
        # CPU-first recipe (issue #6, docs/benchmarks.md "cpu-budget"): every half-resolution
        # pixel is scored and a step costs about half a Noise2Void step, so it converges fastest
        # per CPU-minute; a higher peak learning rate with one-cycle annealing pays in short
        # runs. The masking section only drives the masked-pixel validation loss.
        defaults={
            "network": {"base_channels": 24},
            "masking": {"mode": "stratified", "fraction": 0.02, "fill": "donut"},
            "training": {"learning_rate": 3e-3, "schedule": "onecycle"},
            "tiling": {"collaborative_filter": True},
        },
        uses_masking=False,
        objective_options=("regulariser_weight", "neighbour_pairs"),
        citation=(
            "Huang, Li, Jia, Lu, Liu. Neighbor2Neighbor: Self-Supervised Denoising from Single "
            "Noisy Images. CVPR 2021."
        ),
        doi="10.48550/arXiv.2101.02824",
    )
)
register_method(
    MethodSpec(
        name="noise2same",
        label="Noise2Same",
        summary="Reconstruct every pixel and stay invariant to masking; no blind spot.",
        objective="noise2same:Noise2Same",
        # CPU recipe (issue #13): the plain U-Net (the paper's residual + BatchNorm network
        # costs about twice as much per step; ask for it with residual_blocks=True,
        # batch_norm=True) at 16 base channels, a step 3x cheaper than at 32 (loaded-machine
        # ms/step, 16x64x64). lambda_inv defaults to 'auto' (2 sigma, DenoiserConfig). A peak
        # learning rate of 3e-3 with one-cycle annealing: +0.32 dB over 1e-3 cosine at 300
        # steps on three Set12 crops (26.47 vs 26.15 dB). The donut fill (algorithms.md's
        # alternative, the official BSD68 notebook's choice) keeps x - fill close to the noise,
        # so the invariance bound is nearly tight at 2 sigma: +0.53 dB over the Gaussian fill
        # (26.68 vs 26.15), own-pixel gradient 0.10-0.13 instead of 0.035, and output detail
        # correlated with the input's (+0.04..+0.25) instead of anti-correlated (-0.29..-0.50).
        # 10 % of the pixels masked instead of the paper's 0.5 %: the invariance term is the
        # only one that tells the network what to remove, and it is read on the masked pixels
        # alone; more of them per step make its gradient less noisy (its scale does not
        # change: the mean under the square root is over the masked pixels). Whole Set12 05 at
        # the 1 CPU-minute step budget (352 steps): 0.5 % 27.51 dB, 5 % 27.96, 10 % 28.03;
        # session 20 (docs/benchmarks.md "Noise2Same recipe search"): 10 % vs 5 % at the
        # 3 CPU-minute budget (1057 steps) on 01/07/05/02: +0.11/+0.03/+0.13/+0.03 dB (TTA
        # +0.07/-0.01/+0.08/-0.02); 20 % is no better than 10 % (01, 350 steps).
        # Peak learning rate 6e-3 (session 21), with 10 % masked, 1057 steps, against 3e-3:
        # 01/07/05/02 +0.14/+0.19/+0.08/+0.25 dB (TTA +0.14/+0.14/+0.15/+0.14); the seeded
        # astronaut test (200 steps of 4) +0.10 dB.
        defaults={
            "network": {"base_channels": 16},
            "masking": {"mode": "stratified", "fraction": 0.1, "fill": "donut"},
            "training": {"learning_rate": 6e-3, "schedule": "onecycle"},
            "tiling": {"restore_detail": True, "collaborative_filter": True},
        },
        objective_options=("lambda_inv",),
        citation=(
            "Xie, Wang, Ji. Noise2Same: Optimizing A Self-Supervised Bound for Image Denoising. "
            "NeurIPS 2020."
        ),
        doi="10.48550/arXiv.2010.11971",
    )
)
register_method(
    MethodSpec(
        name="n2v",
        label="Noise2Void (N2V)",
        summary="Predict masked pixels from their neighbours (blind spot).",
        objective="noise2void:Noise2Void",
        defaults={
            "masking": {"mode": "stratified", "fraction": 0.02, "fill": "uniform"},
            "tiling": {"restore_detail": True, "collaborative_filter": True},
        },
        citation=(
            "Krull, Buchholz, Jug. Noise2Void - Learning Denoising from Single Noisy Images. "
            "CVPR 2019."
        ),
        doi="10.48550/arXiv.1811.10980",
    )
)
register_method(
    MethodSpec(
        name="n2v2",
        label="N2V2",
        summary="Noise2Void with median fill and BlurPool, fewer checkerboard artefacts.",
        objective="noise2void:N2V2",
        defaults={
            "network": {"blurpool": True, "top_skip": False},
            "masking": {"mode": "stratified", "fraction": 0.02, "fill": "median"},
            "tiling": {"restore_detail": True, "collaborative_filter": True},
        },
        citation=(
            "Höck, Buchholz, Brachmann, Jug, Freytag. N2V2 - Fixing Noise2Void Checkerboard Artifacts "
            "with Modified Sampling Strategies and a Tweaked Network Architecture. ECCV "
            "Workshops 2022."
        ),
        doi="10.48550/arXiv.2211.08512",
    )
)
register_method(
    MethodSpec(
        name="noise2self",
        label="Noise2Self",
        summary="Random or grid masking, score only masked pixels (J-invariance).",
        objective="noise2self:Noise2Self",
        defaults={
            "masking": {"mode": "bernoulli", "fraction": 0.05, "fill": "donut"},
            "tiling": {"restore_detail": True, "collaborative_filter": True},
        },
        citation="Batson, Royer. Noise2Self: Blind Denoising by Self-Supervision. ICML 2019.",
        doi="10.48550/arXiv.1901.11365",
    )
)
register_method(
    MethodSpec(
        name="supervised",
        label="Supervised",
        summary="Noise2Noise / CARE: needs a second noisy capture or a clean target.",
        objective="supervised:Supervised",
        needs_target=True,
        uses_masking=False,
        citation=(
            "Lehtinen, Munkberg, Hasselgren, Laine, Karras, Aittala, Aila. Noise2Noise: "
            "Learning Image Restoration without Clean Data. ICML 2018."
        ),
        doi="10.48550/arXiv.1803.04189",
    )
)
