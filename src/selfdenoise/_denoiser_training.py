"""Training of a :class:`~selfdenoise.api.Denoiser` (private part of :mod:`selfdenoise.api`).

Like :mod:`selfdenoise.api`, this module does not import torch at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import distributed
from ._errors import SelfDenoiseError
from ._metadata import metadata_dict
from ._model_files import checkpoint_writer, read_checkpoint
from .axes import validate_axes

if TYPE_CHECKING:
    from .config import DenoiserConfig
    from .data import Normaliser

ProgressCallback = Callable[[Any], None]


class TrainingMixin:
    """``fit``, ``fit_iter``, ``continue_training`` and ``stop`` of the Denoiser."""

    if TYPE_CHECKING:  # set by Denoiser.__init__
        config: DenoiserConfig
        network: Any
        normaliser: Normaliser | None
        in_channels: int | None
        lambda_inv: float | None
        history: list[dict]
        training_sizes_note: str
        _steps_trained: int
        _run_lock: threading.Lock
        _active_stop: threading.Event | None
        _device: Any

        @property
        def device(self) -> Any: ...

        @property
        def is_trained(self) -> bool: ...

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
        self.regulariser_weight, self.neighbour_pairs = self._resolve_from_noise(prepared.arrays)
        stop = threading.Event()
        run = TrainingRun(
            network,
            get_objective(
                self.config,
                lambda_inv=self.lambda_inv,
                regulariser_weight=self.regulariser_weight,
                neighbour_pairs=self.neighbour_pairs,
            ),
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
        from .methods.noise2same import lambda_inv_from_sigma
        from .metrics import estimate_noise_rms

        # The RMS noise, not the median-based sigma: photon-limited noise is strongest on the
        # bright structures, and the median reads the dark background (FMD confocal FISH:
        # lambda 0.64 instead of 1.29; one run at 1.17 scored 32.11 dB, not 28.14, at 352
        # steps). One lambda serves every image, so it is the RMS over planes spread across
        # all of them, not the first image's alone (a stack that dims or a set of captures
        # at different exposures has different noise levels after the shared normalisation).
        variances = [estimate_noise_rms(plane) ** 2 for plane in noise_planes(normalised)]
        return lambda_inv_from_sigma(float(np.sqrt(np.mean(variances))))

    def _resolve_from_noise(self, normalised: list[np.ndarray]) -> tuple[float | None, str | None]:
        """Neighbor2Neighbor's regulariser weight and pixel pairs; ``'auto'`` read from the
        photon-noise fraction of the raw training data (``None, None`` for other methods)."""
        if self.config.method != "neighbor2neighbor":
            return None, None
        from .methods.neighbor2neighbor import (
            neighbour_pairs_from_noise,
            regulariser_weight_from_noise,
        )
        from .metrics import photon_noise_fraction

        weight, pairs = self.config.regulariser_weight, self.config.neighbour_pairs
        if "auto" in (weight, pairs):
            # Read in the raw units: the normalisation moves 0, and the fraction depends on it.
            planes = noise_planes(normalised, normaliser=self.normaliser)
            fraction = float(np.mean([photon_noise_fraction(plane) for plane in planes]))
            weight = regulariser_weight_from_noise(fraction) if weight == "auto" else weight
            pairs = neighbour_pairs_from_noise(fraction) if pairs == "auto" else pairs
        return float(weight), str(pairs)

    def _checkpoint_writer(self, rank: int) -> Callable[[dict], None] | None:
        """Writes the run's state into ``checkpoint_dir`` (rank 0 only)."""

        def metadata(history: list, step: int) -> dict:
            return metadata_dict(
                self.config,
                self.normaliser,
                self.in_channels,
                self.lambda_inv,
                history,
                step,
                self.regulariser_weight,
                self.neighbour_pairs,
            )

        return checkpoint_writer(self.config, rank, metadata)

    def _read_checkpoint(self, path: str | Path) -> dict:
        """Load a checkpoint of this model's method, axes and network; take its normaliser
        and channels; return the run state."""
        state, meta = read_checkpoint(self.config, path)
        self.normaliser, self.in_channels = meta.normaliser, meta.in_channels
        self.network = None
        return state


def _either(event: threading.Event, cancel) -> Callable[[], bool]:
    """A cancel check that is true when ``event`` is set or ``cancel`` asks to stop."""
    from .train import is_cancelled

    return lambda: event.is_set() or is_cancelled(cancel)


NOISE_PLANES = 16
"""At most this many 2D planes are read to set Noise2Same's ``lambda_inv='auto'``."""


def noise_planes(
    arrays: list[np.ndarray], limit: int = NOISE_PLANES, normaliser: Any = None
) -> list[np.ndarray]:
    """Up to ``limit`` 2D planes spread evenly over ``arrays`` (each ``(N, C, *spatial)``):
    every sample and channel is a candidate, and a 3D one gives its middle Z plane. With
    ``normaliser`` (that of the normalised ``arrays``) the planes are in the raw units."""
    where = [
        (image, sample, channel)
        for image, array in enumerate(arrays)
        for sample in range(array.shape[0])
        for channel in range(array.shape[1])
    ]
    picks = np.unique(np.linspace(0, len(where) - 1, min(limit, len(where))).round().astype(int))
    planes = []
    for index in picks:
        image, sample, channel = where[index]
        plane = np.asarray(arrays[image][sample, channel])
        plane = plane[plane.shape[0] // 2] if plane.ndim == 3 else plane
        if normaliser is not None:
            entry = min(channel, len(normaliser.offset) - 1)
            plane = plane * normaliser.scale[entry] + normaliser.offset[entry]
        planes.append(plane)
    return planes
