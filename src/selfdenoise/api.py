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

from ._errors import SelfDenoiseError
from ._version import __version__
from .axes import Layout, to_canonical, validate_axes
from .config import DEFAULT_METHOD, DenoiserConfig, make_config
from .data import Normaliser, PatchSampler, check_finite, check_image, fit_patch_shape

MODEL_FORMAT = "napari-selfdenoise-model"
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
        self._resume_state: dict | None = None
        self._stop_event = threading.Event()
        self._device = None

    # ------------------------------------------------------------------ properties
    @property
    def method(self) -> str:
        """Training objective name."""
        return self.config.method

    @property
    def is_trained(self) -> bool:
        """True once the model has weights from training or a file."""
        return self.network is not None and self.normaliser is not None

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

    def __repr__(self) -> str:
        state = f"trained {self.history[-1]['step']} steps" if self.history else "untrained"
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

        Training ends before the next step and keeps the best weights so far.
        """
        self._stop_event.set()

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
            A checkpoint written with ``checkpoint_every`` to continue from.

        Returns
        -------
        list of dict
            One record per validation: step, epoch, loss, val_loss, learning_rate, elapsed.
        """
        for progress in self.fit_iter(
            data, validation, targets=targets, axes=axes, cancel=cancel, resume=resume
        ):
            if callback is not None:
                callback(progress)
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

        Calling it on a trained model continues training from its weights.
        """
        import torch

        from .device import training_memory_format
        from .methods import get_objective
        from .nets import build_network, size_multiple
        from .train import distributed_setup, train, wrap_distributed

        axes = validate_axes(axes or self.config.axes)
        config = self.config
        if config.method == "supervised" and targets is None:
            raise SelfDenoiseError(
                "the supervised method needs targets (a second noisy or clean image)."
            )
        if resume is not None:
            self._load_resume(resume)
        arrays, layouts = _prepare_arrays(data, axes, config.channels_jointly, "training image")
        target_arrays = None
        if targets is not None:
            target_arrays, _ = _prepare_arrays(targets, axes, config.channels_jointly, "target")
        val_arrays, val_layouts = None, None
        if validation is not None:
            val_arrays, val_layouts = _prepare_arrays(
                validation, axes, config.channels_jointly, "validation image"
            )
        if layouts[0].ndim != config.ndim:
            raise SelfDenoiseError(
                f"axes {axes!r} are {layouts[0].ndim}D but the model is {config.ndim}D ({config.axes})."
            )
        n_channels = layouts[0].n_channels
        if any(layout.n_channels != n_channels for layout in layouts):
            raise SelfDenoiseError("all training images must have the same number of channels.")
        if self.in_channels is not None and n_channels != self.in_channels:
            raise SelfDenoiseError(
                f"this model takes {self.in_channels} channel(s) but the data has {n_channels}."
            )
        if self.normaliser is None:
            self.normaliser = Normaliser.fit(arrays, layouts, config.normalisation)
        normalised = [self._normalise(a, layout) for a, layout in zip(arrays, layouts, strict=True)]
        norm_targets = None
        if target_arrays is not None:
            norm_targets = [
                self._normalise(t, layout) for t, layout in zip(target_arrays, layouts, strict=True)
            ]

        training = config.training
        device = self.device
        rank, _world, device = distributed_setup(device)
        self._device = device
        if self.network is None:
            torch.manual_seed(training.seed)
            self.in_channels = n_channels
            self.network = build_network(config.network, config.ndim, n_channels)
        if self._resume_state is not None:
            self.network.load_state_dict(self._resume_state["network"])
        self.network.to(device)
        patch_shape = fit_patch_shape(
            training.patch_shape,
            [a.shape[2:] for a in normalised]
            + ([v.shape[2:] for v in val_arrays] if val_arrays else []),
            size_multiple(config.network),
        )
        sampler = PatchSampler(
            normalised,
            patch_shape,
            validation_fraction=0.0 if val_arrays else training.validation_fraction,
            augment=training.augment,
            skip_background=training.skip_background,
            seed=training.seed + 1000 * rank,
            targets=norm_targets,
        )
        if val_arrays:
            validation_sampler = PatchSampler(
                [
                    self._normalise(v, layout)
                    for v, layout in zip(val_arrays, val_layouts, strict=True)
                ],
                patch_shape,
                validation_fraction=0.0,
                augment=False,
                seed=training.seed,
            )
            sampler.validation_patches = validation_sampler.validation_patches
            sampler.validation_is_held_out = True
        self.lambda_inv = self._resolve_lambda_inv(normalised)
        objective = get_objective(config, lambda_inv=self.lambda_inv)
        # Train in the memory format train() feeds its batches in; set it before
        # DistributedDataParallel sees the weights (it fixes their strides), and hand the
        # network back in the default format afterwards.
        self.network.to(
            memory_format=training_memory_format(device, config.ndim, training.channels_last)
        )
        model = wrap_distributed(self.network, device)

        def stop_requested() -> bool:
            from .train import is_cancelled

            return self._stop_event.is_set() or is_cancelled(cancel)

        checkpoint = None
        if training.checkpoint_every and training.checkpoint_dir and rank == 0:
            checkpoint = self._checkpoint_writer(Path(training.checkpoint_dir))
        try:
            result = yield from train(
                model,
                objective,
                sampler,
                training,
                device,
                cancel=stop_requested,
                resume=self._resume_state,
                checkpoint=checkpoint,
            )
        finally:
            self._stop_event.clear()
            self.network.to(memory_format=torch.contiguous_format)
        resumed = self._resume_state is not None
        self._resume_state = None
        # A resumed run carries the earlier history in its state; continued training appends.
        self.history = (
            result["history"]
            if resumed
            else self.history + _offset_history(result["history"], self.history)
        )
        self._last_state = result["state"]
        self._validation_held_out = sampler.validation_is_held_out
        self.network.eval()
        return self.history

    def network_factory(self):
        """Picklable recipe (:class:`~selfdenoise.tiling.NetworkFactory`) that rebuilds this
        network with its weights elsewhere, e.g. on dask workers."""
        import functools

        from .nets import build_network, receptive_radius, size_multiple
        from .tiling import NetworkFactory

        self._require_trained()
        build = functools.partial(
            build_network, self.config.network, self.config.ndim, self.in_channels
        )
        weights = {k: v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        return NetworkFactory(
            build,
            weights,
            size_multiple(self.config.network),
            receptive_radius(self.config.network, self.config.ndim),
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
            device=self.config.training.device,
            channels_jointly=self.config.channels_jointly,
            **options,
        )

    def _normalise(self, array: np.ndarray, layout: Layout) -> np.ndarray:
        canonical, _ = to_canonical(array, layout.axes, layout.channels_jointly)
        bound = self.normaliser.bind(layout)
        return np.stack([bound.forward(canonical[n], n) for n in range(canonical.shape[0])])

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

    def _checkpoint_writer(self, folder: Path) -> Callable[[dict], None]:
        from .train import save_resumable

        folder.mkdir(parents=True, exist_ok=True)

        def write(state: dict) -> None:
            save_resumable(folder / "checkpoint.pt", state, self._metadata())

        return write

    def _load_resume(self, path: str | Path) -> None:
        from .io import load_checkpoint

        state = load_checkpoint(path)
        extra = state.get("extra") or {}
        if extra.get("format") != MODEL_FORMAT:
            raise SelfDenoiseError(f"'{path}' is not a napari-selfdenoise training checkpoint.")
        self._apply_metadata(extra)
        self._resume_state = state

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
            ``progress(done_tiles, total_tiles, eta_seconds)``.
        cancel : threading.Event or callable, optional
            Stop between batches (raises :class:`selfdenoise.tiling.PredictionCancelled`).

        Returns
        -------
        ndarray or array-like
            The denoised image (``out`` if given), same shape as ``image``.
        """
        self._require_trained()
        from .nets import receptive_radius, size_multiple
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
            size_multiple=size_multiple(self.config.network),
            receptive_radius=receptive_radius(self.config.network, self.config.ndim),
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
        return _cast_output(result, dtype, getattr(image, "dtype", np.float32))

    def prediction_layout(self, image, axes: str | None = None) -> Layout:
        """The canonical :class:`~selfdenoise.axes.Layout` this model predicts ``image`` with.

        Resolves ``axes`` as :meth:`predict` does (a 2D model on ``ZYX`` data works slice by
        slice) and checks the image's dimensions and channels against the model.
        """
        ndim = len(np.shape(image))
        model_axes = self.config.axes
        if axes is None:
            if ndim == len(model_axes):
                axes = model_axes
            elif ndim == len(model_axes) + 1 and "S" not in model_axes:
                axes = "S" + model_axes
            else:
                raise SelfDenoiseError(
                    f"image has {ndim} dimensions but the model was trained on {model_axes!r}; "
                    "give the image's axes (e.g. axes='TZYX')."
                )
        axes = validate_axes(axes, ndim)
        if self.config.ndim == 2 and "Z" in axes:
            free = next((a for a in "ST" if a not in axes), None)
            if free is None:
                raise SelfDenoiseError(
                    "a 2D model cannot denoise data with S, T and Z axes at once."
                )
            axes = axes.replace("Z", free)
        if self.config.ndim == 3 and "Z" not in axes:
            raise SelfDenoiseError(
                "this is a 3D model; the image needs a Z axis (e.g. axes='ZYX')."
            )
        layout = check_image(image, axes)
        layout = Layout(layout.axes, layout.shape, self.config.channels_jointly)
        if layout.n_channels != self.in_channels:
            raise SelfDenoiseError(
                f"this model takes {self.in_channels} channel(s) but the image has {layout.n_channels}."
            )
        return layout

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise SelfDenoiseError("the model is not trained yet; call fit() or load a model file.")

    # ------------------------------------------------------------------ files
    def _metadata(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "version": __version__,
            "config": self.config.to_dict(),
            "normaliser": self.normaliser.to_dict() if self.normaliser else None,
            "in_channels": self.in_channels,
            "lambda_inv": self.lambda_inv,
            "history": self.history,
        }

    def _apply_metadata(self, metadata: dict) -> None:
        try:
            self.config = DenoiserConfig.from_dict(metadata["config"])
            self.normaliser = Normaliser.from_dict(metadata["normaliser"])
            self.in_channels = int(metadata["in_channels"])
        except (KeyError, TypeError) as exc:
            raise SelfDenoiseError(f"the model file is incomplete (missing {exc}).") from None
        self.lambda_inv = metadata.get("lambda_inv")
        self.history = list(metadata.get("history", []))

    def save(self, path: str | Path) -> Path:
        """Save weights (safetensors) and settings, normalisation and history (JSON) to one file.

        Returns the path written (``.safetensors`` is appended when there is no suffix).
        """
        self._require_trained()
        from .io import save_bundle

        return save_bundle(path, self.network.state_dict(), self._metadata())

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Denoiser:
        """Load a model saved with :meth:`save`; never unpickles.

        Parameters
        ----------
        path : path
            The ``.safetensors`` model file.
        device : str, optional
            Override the device stored with the model (``'cpu'``, ``'cuda'``, ``'mps'``).
        """
        from .io import load_bundle
        from .nets import build_network

        state_dict, metadata = load_bundle(path)
        if metadata.get("format") != MODEL_FORMAT:
            raise SelfDenoiseError(f"'{path}' is not a napari-selfdenoise model file.")
        denoiser = cls.__new__(cls)
        Denoiser.__init__(denoiser, config=DenoiserConfig.from_dict(metadata["config"]))
        denoiser._apply_metadata(metadata)
        if device is not None:
            denoiser.config.training.device = device
        network = build_network(denoiser.config.network, denoiser.config.ndim, denoiser.in_channels)
        try:
            network.load_state_dict(state_dict)
        except RuntimeError:
            raise SelfDenoiseError(
                f"the weights in '{path}' do not match its network settings; the file is damaged."
            ) from None
        denoiser.network = network.to(denoiser.device).eval()
        return denoiser


def _prepare_arrays(data, axes: str, channels_jointly: bool, name: str):
    """Check and convert training inputs to float arrays with layouts."""
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


def _offset_history(new: list[dict], old: list[dict]) -> list[dict]:
    """Renumber the steps of a continued run so they follow the earlier history."""
    if not old:
        return new
    offset = old[-1]["step"]
    return [{**row, "step": row["step"] + offset} for row in new]


def _cast_output(result, dtype, input_dtype):
    if dtype is None or not isinstance(result, np.ndarray):
        return result
    target = (
        np.dtype(input_dtype) if isinstance(dtype, str) and dtype == "input" else np.dtype(dtype)
    )
    if target.kind in "ui":
        info = np.iinfo(target)
        return np.clip(np.rint(result), info.min, info.max).astype(target)
    return result.astype(target, copy=False)
