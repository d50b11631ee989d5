"""The public :class:`Denoiser`: train on noisy stacks, predict with tiles, save and load.

This module does not import torch at import time; it does so when a model is built, trained,
applied or loaded. Training lives in ``_denoiser_training`` and prediction in
``_denoiser_prediction`` (mixins of :class:`Denoiser`); model files in ``_model_files``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ._denoiser_prediction import PredictionMixin
from ._denoiser_training import ProgressCallback as ProgressCallback
from ._denoiser_training import TrainingMixin
from ._errors import SelfDenoiseError
from ._metadata import MODEL_FORMAT, metadata_dict
from ._model_files import read_model_file, weighted_network
from .config import DEFAULT_METHOD, DenoiserConfig, make_config
from .data import Normaliser

__all__ = ["MODEL_FORMAT", "Denoiser", "describe_default_device"]


def describe_default_device(preference: str = "auto", *, precision: bool = False) -> str:
    """Name of the device training would use, e.g. ``'CPU (2 threads)'`` or a GPU name.

    With ``precision=True`` the name is followed by what training computes in there with the
    default ``amp`` setting, e.g. ``'CPU (2 threads), float32'``, or ``'CPU (2 threads), bf16
    in 2D, float32 in 3D'`` where that depends on the images (see
    :attr:`Denoiser.training_precision`).
    """
    from .config import DenoiserConfig
    from .device import describe_device, precision_name, select_device

    device = select_device(preference)
    if not precision:
        return describe_device(device)
    amp = DenoiserConfig().training.amp
    return f"{describe_device(device)}, {precision_name(device, amp)}"


class Denoiser(TrainingMixin, PredictionMixin):
    """A self-supervised denoiser for 2D/3D images.

    Parameters
    ----------
    method : {'neighbor2neighbor', 'noise2same', 'n2v', 'n2v2', 'noise2self', 'supervised'}
        Training objective (default ``'neighbor2neighbor'``).
    axes : str
        Axes of the training data, e.g. ``'YX'``, ``'ZYX'``, ``'TYX'``, ``'CYX'``.
    config : DenoiserConfig, optional
        Complete settings; overrides ``method``, ``axes`` and ``settings``.
    **settings
        Any setting of :class:`~selfdenoise.config.DenoiserConfig`, flat or by section,
        e.g. ``patch_shape=(64, 64)``, ``steps=500``, ``max_minutes=2``, ``lambda_inv=2``.

    Attributes
    ----------
    lambda_inv : float or None
        Noise2Same's invariance weight of the last fit (``'auto'`` read from the data).
    regulariser_weight : float or None
        Neighbor2Neighbor's regulariser weight of the last fit (``'auto'``: 0 on
        photon-limited data, else 2); saved with the model.
    neighbour_pairs : str or None
        Neighbor2Neighbor's pixel pairs of the last fit (``'auto'``: ``'diagonal'`` on
        photon-limited data, else ``'adjacent'``); saved with the model.

    Examples
    --------
    >>> from selfdenoise import Denoiser
    >>> from selfdenoise.samples import noisy_2d
    >>> noisy, clean = noisy_2d()
    >>> model = Denoiser("noise2same", "YX", steps=20, batch_size=4, device="cpu")
    >>> history = model.fit(noisy)
    >>> denoised = model.predict(noisy)
    >>> denoised.shape == noisy.shape
    True
    """

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        axes: str = "YX",
        *,
        config: DenoiserConfig | None = None,
        **settings: Any,
    ) -> None:
        self.config = (
            config.validate() if config is not None else make_config(method, axes, **settings)
        )
        self.network = None
        self.normaliser: Normaliser | None = None
        self.in_channels: int | None = None
        self.lambda_inv: float | None = None
        self.regulariser_weight: float | None = None
        self.neighbour_pairs: str | None = None
        self.history: list[dict] = []
        self._steps_trained = 0
        self._from_file = False
        self._run_lock = threading.Lock()
        self._active_stop: threading.Event | None = None
        self._device = None
        self.training_sizes_note = ""
        """Batch and patch of the last fit and why (CPU recipe, or sized to the GPU's memory)."""

    # ------------------------------------------------------------------ properties
    @property
    def method(self) -> str:
        """Training objective name."""
        return self.config.method

    @property
    def is_trained(self) -> bool:
        """True once the model has weights from at least one training step or a file."""
        has_weights = self.network is not None and self.normaliser is not None
        return has_weights and (self._from_file or self._steps_trained > 0)

    @property
    def steps_trained(self) -> int:
        """Training steps the weights have had in all (across continued and resumed runs)."""
        return self._steps_trained

    @property
    def device(self):
        """The torch device used for training and prediction."""
        if self._device is None:
            from .device import select_device

            self._device = select_device(self.config.training.device)
        return self._device

    @property
    def device_description(self) -> str:
        """Human-readable device name."""
        from .device import describe_device

        return describe_device(self.device)

    @property
    def training_precision(self) -> str:
        """What :meth:`fit` computes in on :attr:`device`: ``'float32'``, or ``'bf16'`` or
        ``'fp16'`` mixed precision, as the ``amp`` setting resolves there for this model's
        spatial dimensions (``'auto'``: bf16 on GPUs that have it, on CPUs with AMX, and in
        2D on CPUs with AVX-512 BF16)."""
        from .device import precision_name

        return precision_name(self.device, self.config.training.amp, self.config.ndim)

    def to(self, device: str) -> Denoiser:
        """Use ``device`` (``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``, ``'auto'``) from now on.

        Moves the weights there; the next :meth:`fit` and :meth:`predict` run there.

        Raises
        ------
        SelfDenoiseError
            For an unknown device or one that is not present.
        """
        from .device import select_device

        self._device = select_device(device)
        if self.network is not None:
            self.network.to(self._device)
        return self

    def __repr__(self) -> str:
        state = f"trained {self.steps_trained} steps" if self.is_trained else "untrained"
        return f"Denoiser(method={self.method!r}, axes={self.config.axes!r}, {state})"

    # ------------------------------------------------------------------ files
    def _metadata(self) -> dict:
        return metadata_dict(
            self.config,
            self.normaliser,
            self.in_channels,
            self.lambda_inv,
            self.history,
            self._steps_trained,
            self.regulariser_weight,
            self.neighbour_pairs,
        )

    def save(self, path: str | Path) -> Path:
        """Save weights (safetensors) and settings, normalisation and history (JSON) to one file.

        Returns the path written (``.safetensors`` is appended when there is no suffix).

        Raises
        ------
        SelfDenoiseError
            When the model has no trained weights (e.g. stopped before its first step).
        """
        if not self.is_trained:
            raise SelfDenoiseError(
                "the model has not been trained (0 steps); train it before saving."
            )
        from .io import save_bundle

        return save_bundle(path, self.network.state_dict(), self._metadata())

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Denoiser:
        """Load a model saved with :meth:`save`; never unpickles.

        Every field of the file is checked before anything is built from it.

        Parameters
        ----------
        path : path
            The ``.safetensors`` model file, or a BioImage Model Zoo ``.zip`` package written
            by :func:`selfdenoise.export.export_bmz`.
        device : str, optional
            Where to run it (``'cpu'``, ``'cuda'``, ``'mps'``, ``'auto'``). Default ``'auto'``:
            the device the model was trained on is a preference, not a requirement, so a
            model trained on a GPU loads on a CPU-only machine. See also :meth:`to`.
        """
        state_dict, meta = read_model_file(path)
        denoiser = cls(config=meta.config)
        denoiser.normaliser, denoiser.in_channels = meta.normaliser, meta.in_channels
        denoiser.lambda_inv, denoiser.history = meta.lambda_inv, meta.history
        denoiser.regulariser_weight = meta.regulariser_weight
        denoiser.neighbour_pairs = meta.neighbour_pairs
        denoiser._steps_trained, denoiser._from_file = meta.steps_trained, True
        if device is not None:
            denoiser.continue_training(device=device)
        denoiser.network = weighted_network(meta, state_dict, path)
        denoiser.to(device or "auto")
        return denoiser
