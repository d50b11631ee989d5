"""The public :class:`Denoiser`: train on noisy stacks, predict with tiles, save and load.

This module does not import torch at import time; it does so when a model is built, trained,
applied or loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import distributed
from ._errors import SelfDenoiseError
from ._metadata import MODEL_FORMAT, metadata_dict
from ._model_files import checkpoint_writer, read_checkpoint, read_model_file, weighted_network
from ._prediction import cast_output, prediction_layout
from .axes import Layout, validate_axes
from .config import DEFAULT_METHOD, DenoiserConfig, make_config
from .data import Normaliser, check_finite

__all__ = ["MODEL_FORMAT", "Denoiser", "describe_default_device"]

ProgressCallback = Callable[[Any], None]


def describe_default_device(preference: str = "auto") -> str:
    """Name of the device training would use, e.g. ``'CPU (2 threads)'`` or a GPU name."""
    from .device import describe_device, select_device

    return describe_device(select_device(preference))


class Denoiser:
    """A self-supervised denoiser for 2D/3D images.

    Parameters
    ----------
    method : {'noise2same', 'n2v', 'n2v2', 'noise2self', 'supervised'}
        Training objective.
    axes : str
        Axes of the training data, e.g. ``'YX'``, ``'ZYX'``, ``'TYX'``, ``'CYX'``.
    config : DenoiserConfig, optional
        Complete settings; overrides ``method``, ``axes`` and ``settings``.
    **settings
        Any setting of :class:`~selfdenoise.config.DenoiserConfig`, flat or by section,
        e.g. ``patch_shape=(64, 64)``, ``steps=500``, ``max_minutes=2``, ``lambda_inv=2``.

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

    # ------------------------------------------------------------------ training
    def continue_training(self, **settings: Any) -> None:
        """Change settings for the next :meth:`fit`, which continues from the current weights.

        Parameters
        ----------
        **settings
            Flat or sectioned settings as in :func:`~selfdenoise.config.make_config`: the
            budget, learning rate and schedule, the masked fraction, ``lambda_inv``, ...
            Settings that shape the network (``depth``, ``base_channels``, ...) or the data
            layout cannot change once a model has weights.

        Raises
        ------
        SelfDenoiseError
            For an invalid setting, or one that would change the network or the axes.
        """
        from .config import replace_settings

        self.config = replace_settings(self.config, frozen=self.is_trained, **settings)

    def stop(self) -> None:
        """Ask a running :meth:`fit` / :meth:`fit_iter` to stop (thread-safe).

        Training ends before the next step, keeping the best weights so far. Without a
        running fit this does nothing (it does not cancel a later one).
        """
        with self._run_lock:
            if self._active_stop is not None:
                self._active_stop.set()

    def fit(
        self,
        data,
        validation=None,
        *,
        targets=None,
        axes: str | None = None,
        callback: ProgressCallback | None = None,
        cancel=None,
        resume: str | Path | None = None,
    ) -> list[dict]:
        """Train on one noisy array or a list of arrays; return the validation history.

        Parameters
        ----------
        data : ndarray or sequence of ndarray
            Noisy images with axes ``axes`` (default: the configured axes). Several arrays of
            different shapes may be given.
        validation : ndarray or sequence of ndarray, optional
            Images to compute the validation loss on; by default a slab of ``data`` is held out.
        targets : ndarray or sequence of ndarray, optional
            Targets for ``method='supervised'`` (second noisy capture or clean image).
        axes : str, optional
            Axes of ``data`` if different from the configured ones.
        callback : callable, optional
            Called with each :class:`~selfdenoise.train.Progress`.
        cancel : threading.Event or callable, optional
            Stop when set; the best weights so far are kept.
        resume : path, optional
            A checkpoint written with ``checkpoint_every`` to continue from (same method,
            axes and network).

        Returns
        -------
        list of dict
            One record per validation: step (global), epoch, loss, val_loss, learning_rate,
            elapsed.

        Notes
        -----
        Under ``torchrun`` the process group is joined here and left when training ends.
        On any interruption (Ctrl-C included) the model keeps the best weights so far before
        the exception propagates, so it can still be saved.
        """
        joined = not distributed.is_active()
        iterator = self.fit_iter(
            data, validation, targets=targets, axes=axes, cancel=cancel, resume=resume
        )
        try:
            for progress in iterator:
                if callback is not None:
                    callback(progress)
        finally:
            iterator.close()
            if joined:
                distributed.teardown()
        return self.history

    def fit_iter(
        self,
        data,
        validation=None,
        *,
        targets=None,
        axes: str | None = None,
        cancel=None,
        resume: str | Path | None = None,
    ) -> Generator:
        """Like :meth:`fit`, but yield a :class:`~selfdenoise.train.Progress` after each step.

        Calling it on a trained model continues training from its weights; step numbers
        continue from :attr:`steps_trained`. Under ``torchrun`` the process group is joined
        and stays (leave it with :func:`selfdenoise.distributed.teardown`).
        """
        run = self._start_run(data, validation, targets, axes, cancel, resume)
        try:
            yield from run.steps()
        finally:
            self._end_run(run)
        return self.history

    def _start_run(self, data, validation, targets, axes, cancel, resume):
        """Prepare the data, network, objective and a :class:`TrainingRun` for one fit."""
        from .device_sizes import sized_for_device
        from .methods import get_objective
        from .prepare import prepare_training_data
        from .training import TrainingRun, make_sampler

        axes = validate_axes(axes or self.config.axes)
        if self.config.method == "supervised" and targets is None:
            raise SelfDenoiseError(
                "the supervised method needs targets (a second noisy or clean image)."
            )
        checkpoint_state = self._read_checkpoint(resume) if resume is not None else None
        if checkpoint_state is None and not self.is_trained:
            self.network, self.normaliser, self.in_channels = None, None, None
        prepared, self.normaliser = prepare_training_data(
            self.config,
            data,
            axes=axes,
            validation=validation,
            targets=targets,
            normaliser=self.normaliser,
            in_channels=self.in_channels,
        )
        rank, _world, self._device = distributed.setup(self.device)
        network = self._network_for(prepared.n_channels).to(self._device)
        training, self.training_sizes_note = sized_for_device(
            self.config.training,
            self.config.network,
            self._device,
            prepared.n_channels,
            prepared.spatial_shapes,
            data_voxels=prepared.training_voxels,
        )
        sampler = make_sampler(prepared, training, network.size_multiple, rank)
        self.lambda_inv = self._resolve_lambda_inv(prepared.arrays)
        stop = threading.Event()
        run = TrainingRun(
            network,
            get_objective(self.config, lambda_inv=self.lambda_inv),
            sampler,
            training,
            self._device,
            start_step=self._steps_trained,
            history=self.history,
            cancel=_either(stop, cancel),
            checkpoint=self._checkpoint_writer(rank),
        )
        if checkpoint_state is not None:
            try:
                run.load_state_dict(checkpoint_state)
            except (KeyError, RuntimeError, ValueError, TypeError):
                raise SelfDenoiseError(
                    f"the checkpoint '{resume}' is damaged or does not fit this model."
                ) from None
        with self._run_lock:
            self._active_stop = stop
        return run

    def _end_run(self, run) -> None:
        """Take the run's history and step count (also after an interruption)."""
        with self._run_lock:
            self._active_stop = None
        self.history = list(run.state.history)
        self._steps_trained = run.state.step

    def _network_for(self, n_channels: int):
        """The network to train: the current one, or a new one seeded from the config."""
        if self.network is None:
            import torch

            from .nets import build_network

            torch.manual_seed(self.config.training.seed)
            self.in_channels = n_channels
            self.network = build_network(self.config.network, self.config.ndim, n_channels)
        return self.network

    def _resolve_lambda_inv(self, normalised: list[np.ndarray]) -> float | None:
        if self.config.method != "noise2same":
            return None
        if self.config.lambda_inv != "auto":
            return float(self.config.lambda_inv)
        from .metrics import estimate_noise_sigma

        sample = normalised[0][0, 0]
        if sample.ndim == 3:
            sample = sample[sample.shape[0] // 2]
        from .methods.noise2same import lambda_inv_from_sigma

        return lambda_inv_from_sigma(estimate_noise_sigma(sample))

    def _checkpoint_writer(self, rank: int) -> Callable[[dict], None] | None:
        """Writes the run's state into ``checkpoint_dir`` (rank 0 only)."""

        def metadata(history: list, step: int) -> dict:
            return metadata_dict(
                self.config, self.normaliser, self.in_channels, self.lambda_inv, history, step
            )

        return checkpoint_writer(self.config, rank, metadata)

    def _read_checkpoint(self, path: str | Path) -> dict:
        """Load a checkpoint of this model's method, axes and network; take its normaliser
        and channels; return the run state."""
        state, meta = read_checkpoint(self.config, path)
        self.normaliser, self.in_channels = meta.normaliser, meta.in_channels
        self.network = None
        return state

    def network_factory(self):
        """Picklable recipe (:class:`~selfdenoise.tiling.NetworkFactory`) that rebuilds this
        network with its weights elsewhere, e.g. on dask workers."""
        import functools

        from .nets import build_network
        from .tiling import NetworkFactory

        self._require_trained()
        build = functools.partial(
            build_network, self.config.network, self.config.ndim, self.in_channels
        )
        weights = {k: v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        return NetworkFactory(
            build,
            weights,
            self.network.size_multiple,
            self.network.receptive_radius,
        )

    def predict_dask(self, image, axes: str | None = None, **options):
        """Lazy tiled prediction of a dask array (runs on a dask.distributed cluster if any).

        Parameters
        ----------
        image : dask.array.Array
            The image; chunks are realigned to the network's size multiple.
        axes : str, optional
            As in :meth:`predict`.
        **options
            ``tile_shape``, ``overlap``, ``batch_size``, ``blend``, ``tta``, ``half``,
            ``out_dtype`` of :func:`selfdenoise.tiling.predict_dask`.

        Returns
        -------
        dask.array.Array
            The denoised image, computed when asked (``.compute()``, ``.to_zarr()``).
        """
        from .tiling import predict_dask

        layout = self.prediction_layout(image, axes)
        return predict_dask(
            self.network_factory(),
            image,
            layout,
            self.normaliser.bind(layout),
            device=str(self.device),
            channels_jointly=self.config.channels_jointly,
            **options,
        )

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        image,
        axes: str | None = None,
        *,
        tile_shape: Sequence[int] | None = None,
        overlap: Sequence[int] | int | None = None,
        tta: bool | None = None,
        batch_size: int | None = None,
        blend: str | None = None,
        out=None,
        dtype: str | np.dtype | None = None,
        progress: Callable[[int, int, float | None], None] | None = None,
        cancel=None,
    ) -> np.ndarray:
        """Denoise an image of any size with tiled prediction.

        Parameters
        ----------
        image : array-like
            numpy array, memory-mapped file, zarr or dask array.
        axes : str, optional
            Axes of ``image``. Default: the model's axes, with a leading ``S`` if the image has
            one more dimension. A 2D model applied to ``ZYX`` data denoises slice by slice.
        tile_shape, overlap : sequence of int, optional
            Spatial tile and halo; automatic by default (see :mod:`selfdenoise.tiling`).
        tta : bool, optional
            Average the 8 flips/rotations in YX.
        batch_size : int, optional
            Tiles per forward pass.
        blend : {'crop', 'hann'}, optional
            Stitching mode.
        out : array-like, optional
            Writable array of the image's shape (numpy, memmap, zarr) filled tile by tile.
        dtype : dtype or 'input', optional
            Output data type; float32 by default, ``'input'`` for the input's dtype (clipped).
        progress : callable, optional
            ``progress(done_tiles, total_tiles, eta_seconds)``; ``done_tiles`` may be fractional
            (progress inside a long batch).
        cancel : threading.Event or callable, optional
            Stop within about 50 ms, also inside a long tile (raises
            :class:`selfdenoise.tiling.PredictionCancelled`).

        Returns
        -------
        ndarray or array-like
            The denoised image (``out`` if given), same shape as ``image``.
        """
        self._require_trained()
        from .tiling import predict_tiled

        layout = self.prediction_layout(image, axes)
        if isinstance(image, np.ndarray):
            check_finite(image)
        tiling = self.config.tiling
        result = predict_tiled(
            self.network,
            image,
            layout,
            self.normaliser.bind(layout),
            size_multiple=self.network.size_multiple,
            receptive_radius=self.network.receptive_radius,
            tile_shape=tuple(tile_shape) if tile_shape is not None else tiling.tile_shape,
            overlap=overlap if overlap is not None else tiling.overlap,
            batch_size=batch_size or tiling.tile_batch_size,
            blend=blend or tiling.blend,
            tta=tiling.tta if tta is None else tta,
            half=tiling.half,
            device=self.device,
            out=out,
            progress=progress,
            cancel=cancel,
        )
        return cast_output(result, dtype, getattr(image, "dtype", np.float32))

    def prediction_layout(self, image, axes: str | None = None) -> Layout:
        """The canonical :class:`~selfdenoise.axes.Layout` this model predicts ``image`` with.

        Resolves ``axes`` as :meth:`predict` does (a 2D model on ``ZYX`` data works slice by
        slice) and checks the image's dimensions and channels against the model.
        """
        return prediction_layout(self.config, self.in_channels, image, axes)

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise SelfDenoiseError("the model is not trained yet; call fit() or load a model file.")

    # ------------------------------------------------------------------ files
    def _metadata(self) -> dict:
        return metadata_dict(
            self.config,
            self.normaliser,
            self.in_channels,
            self.lambda_inv,
            self.history,
            self._steps_trained,
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
        denoiser._steps_trained, denoiser._from_file = meta.steps_trained, True
        if device is not None:
            denoiser.continue_training(device=device)
        denoiser.network = weighted_network(meta, state_dict, path)
        denoiser.to(device or "auto")
        return denoiser


def _either(event: threading.Event, cancel) -> Callable[[], bool]:
    """A cancel check that is true when ``event`` is set or ``cancel`` asks to stop."""
    from .train import is_cancelled

    return lambda: event.is_set() or is_cancelled(cancel)
