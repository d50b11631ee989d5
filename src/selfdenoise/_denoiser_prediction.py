"""Prediction with a :class:`~selfdenoise.api.Denoiser` (private part of :mod:`selfdenoise.api`).

Like :mod:`selfdenoise.api`, this module does not import torch at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import SelfDenoiseError
from ._prediction import cast_output, prediction_layout
from .axes import Layout
from .data import check_finite

if TYPE_CHECKING:
    from .config import DenoiserConfig
    from .data import Normaliser


class PredictionMixin:
    """``predict``, ``predict_dask``, ``prediction_layout`` and ``network_factory``."""

    if TYPE_CHECKING:  # set by Denoiser.__init__
        config: DenoiserConfig
        network: Any
        normaliser: Normaliser | None
        in_channels: int | None

        @property
        def device(self) -> Any: ...

        @property
        def is_trained(self) -> bool: ...

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
            ``out_dtype`` of :func:`selfdenoise.tiling.predict_dask`, and ``restore_detail``
            and ``collaborative_filter`` as in :meth:`predict` (done block by block, each
            block reading its own noise level).

        Returns
        -------
        dask.array.Array
            The denoised image, computed when asked (``.compute()``, ``.to_zarr()``).
        """
        from .tiling import predict_dask

        layout = self.prediction_layout(image, axes)
        restore = options.pop("restore_detail", None)
        collaborative = options.pop("collaborative_filter", None)
        result = predict_dask(
            self.network_factory(),
            image,
            layout,
            self.normaliser.bind(layout),
            device=str(self.device),
            channels_jointly=self.config.channels_jointly,
            **options,
        )
        if self._runs("restore_detail", restore):
            from .restore import restore_detail_dask

            result = restore_detail_dask(image, result, layout)
        if self._runs("collaborative_filter", collaborative):
            from .collaborative import collaborative_wiener_dask

            result = collaborative_wiener_dask(image, result, layout)
        return result

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
        restore_detail: bool | None = None,
        collaborative_filter: bool | None = None,
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
        restore_detail : bool, optional
            Blend each pixel with its noisy value where the output lost detail
            (:func:`selfdenoise.restore.restore_detail`, sample by sample). Default: the
            model's ``tiling.restore_detail`` (on for the masked methods and Noise2Same).
        collaborative_filter : bool, optional
            Filter the noisy image again with the output as the pilot: similar patches are
            grouped and shrunk together (:func:`selfdenoise.collaborative.collaborative_wiener`,
            plane by plane). Default: the model's ``tiling.collaborative_filter``.
        out : array-like, optional
            Writable array of the image's shape (numpy, memmap, zarr) filled tile by tile.
        dtype : dtype or 'input', optional
            Output data type; float32 by default, ``'input'`` for the input's dtype (clipped).
        progress : callable, optional
            ``progress(done_tiles, total_tiles, eta_seconds)``; ``done_tiles`` may be fractional
            (progress inside a long batch).
        cancel : threading.Event or callable, optional
            Stop within about 50 ms, also inside a long tile (raises
            :class:`selfdenoise.tiling.PredictionCancelled`), and within a fraction of a
            second during the steps after the network.

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
        if out is not None and _shares_storage(image, out):
            raise SelfDenoiseError(
                "out is the image itself (or shares its memory): the tiles would read what "
                "earlier tiles wrote and the input would be lost; pass a separate array."
            )
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
        if self._runs("restore_detail", restore_detail):
            from .restore import restore_detail_samples

            result = restore_detail_samples(image, result, layout, cancel=cancel)
        if self._runs("collaborative_filter", collaborative_filter):
            from .collaborative import collaborative_wiener_samples

            result = collaborative_wiener_samples(
                image, result, layout, cancel=cancel, on_shared_noise=self._warn_shared_noise
            )
        return cast_output(result, dtype, getattr(image, "dtype", np.float32))

    def _warn_shared_noise(self, readout: float) -> None:
        """Say that the collaborative step kept the output, and what trains on such noise."""
        import warnings

        pairs = getattr(self, "neighbour_pairs", None)  # resolved at the fit; None in old files
        note = shared_noise_note(self.config, readout, pairs)
        warnings.warn(note, RuntimeWarning, stacklevel=3)

    def prediction_layout(self, image, axes: str | None = None) -> Layout:
        """The canonical :class:`~selfdenoise.axes.Layout` this model predicts ``image`` with.

        Resolves ``axes`` as :meth:`predict` does (a 2D model on ``ZYX`` data works slice by
        slice) and checks the image's dimensions and channels against the model.
        """
        return prediction_layout(self.config, self.in_channels, image, axes)

    def _runs(self, step: str, asked: bool | None) -> bool:
        """Whether a prediction runs the post-network ``step`` (a ``tiling`` setting, e.g.
        ``restore_detail``): as asked, else the model's setting."""
        return getattr(self.config.tiling, step) if asked is None else asked

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise SelfDenoiseError("the model is not trained yet; call fit() or load a model file.")


def _shares_storage(image, out) -> bool:
    """True when writing ``out`` could change ``image`` (the same object, or numpy arrays
    whose memory may overlap)."""
    if out is image:
        return True
    return (
        isinstance(image, np.ndarray)
        and isinstance(out, np.ndarray)
        and np.may_share_memory(image, out)
    )


def shared_noise_note(config: DenoiserConfig, readout: float, pairs: str | None = None) -> str:
    """One line for a prediction whose residual shows noise shared by neighbouring pixels;
    ``pairs`` are the Neighbor2Neighbor pixel pairs the model trained with (``None``: not
    recorded, files from before pairs could be chosen, which trained adjacent ones)."""
    kept = f"the collaborative step kept the network's output (shared-noise readout {readout:.2f})"
    if config.method == "neighbor2neighbor" and pairs in (None, "adjacent"):
        return (
            "noise shared by neighbouring pixels: train with diagonal pixel pairs, which remove "
            "it better (neighbour_pairs='diagonal', --neighbour-pairs diagonal); " + kept
        )
    from .registry import get_method

    if config.masking.struct_axis is None and get_method(config.method).uses_masking:
        return (
            "noise shared by neighbouring pixels: for noise shared along rows or columns, "
            "train with struct_axis; " + kept
        )
    return "noise shared by neighbouring pixels: " + kept
