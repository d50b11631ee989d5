"""Lazy prediction of dask arrays, on threads, processes or a dask.distributed cluster.

Every chunk is predicted by :func:`predict_tiled` with a halo borrowed from its neighbours
(:func:`dask.array.map_overlap`). What is shipped to workers is picklable without torch
pickling a live module: a :class:`NetworkFactory` holding a builder and the weights as
numpy arrays. Each worker process builds the network once per device and caches it,
keyed by a hash of the factory's builder and weights (:func:`network_builds` counts the
builds, e.g. ``client.run(network_builds)`` on a cluster).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .._errors import SelfDenoiseError
from ..axes import SPATIAL_AXES, Layout
from ._forward import convert_memory_format, fast_memory_format
from ._grid import round_up
from ._predict import predict_tiled

_CACHE: OrderedDict[tuple[str, str], torch.nn.Module] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2
_BUILDS = 0


def network_builds() -> int:
    """How many networks :class:`NetworkFactory` has built in this process (for tests and
    for checking that a cluster builds each network once per worker)."""
    return _BUILDS


@dataclass
class NetworkFactory:
    """Picklable recipe for a trained network: how to build it, and its weights.

    Parameters
    ----------
    build : callable
        Picklable zero-argument callable returning the untrained module, e.g.
        ``functools.partial(selfdenoise.nets.build_network, config, ndim, in_channels)``.
    state_dict : dict of str to ndarray, or None
        Weights loaded into the built module (None: keep the builder's weights).
    size_multiple, receptive_radius : int
        What :func:`predict_tiled` needs to know about the network.
    token : str, optional
        Identity of this network; workers cache one built network per token and device.
        Default: a hash of the builder's description and the weights (a random token when
        ``state_dict`` is None), so factories made again from the same model share it.
    """

    build: Callable[[], torch.nn.Module]
    state_dict: dict[str, np.ndarray] | None
    size_multiple: int
    receptive_radius: int
    token: str = field(default="")

    def __post_init__(self) -> None:
        if not self.token:
            self.token = _content_token(self.build, self.state_dict)

    @classmethod
    def from_module(
        cls, network: torch.nn.Module, size_multiple: int, receptive_radius: int
    ) -> NetworkFactory:
        """Factory that rebuilds a copy of ``network`` (its class must be importable)."""
        frozen = copy.deepcopy(network).cpu().eval()
        return cls(functools.partial(copy.deepcopy, frozen), None, size_multiple, receptive_radius)

    def network(self, device: torch.device) -> torch.nn.Module:
        """The network on ``device`` in eval mode, built once per process and cached."""
        key = (self.token, str(device))
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = self._build(device)
                while len(_CACHE) > _CACHE_SIZE:
                    _CACHE.popitem(last=False)
            _CACHE.move_to_end(key)
            return _CACHE[key]

    def _build(self, device: torch.device) -> torch.nn.Module:
        global _BUILDS
        _BUILDS += 1  # under _CACHE_LOCK
        network = self.build()
        if self.state_dict is not None:
            weights = {name: torch.as_tensor(value) for name, value in self.state_dict.items()}
            network.load_state_dict(weights)
        network = network.to(device).eval()
        ndim = next((p.ndim - 2 for p in network.parameters() if p.ndim in (4, 5)), 2)
        convert_memory_format(network, fast_memory_format(device, ndim))
        return network


def _content_token(build, state_dict) -> str:
    """Hash of the builder's description and the weights; random without weights."""
    if state_dict is None:
        return uuid.uuid4().hex
    digest = hashlib.sha256(_describe(build).encode())
    for name in sorted(state_dict):
        value = np.ascontiguousarray(state_dict[name])
        digest.update(f"{name}{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _describe(build) -> str:
    """The builder without memory addresses (a partial's function by its import path)."""
    if isinstance(build, functools.partial):
        function = build.func
        name = f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"
        return f"{name}{build.args!r}{sorted(build.keywords.items())!r}"
    return f"{getattr(build, '__module__', '')}.{getattr(build, '__qualname__', repr(build))}"


def predict_dask(
    model,
    array,
    layout: Layout | str | None = None,
    normaliser=None,
    *,
    size_multiple: int | None = None,
    receptive_radius: int | None = None,
    tile_shape: tuple[int, ...] | None = None,
    overlap: int | tuple[int, ...] | None = None,
    batch_size: int | None = None,
    blend: str = "crop",
    tta: bool = False,
    half: str = "auto",
    device: str = "auto",
    out_dtype=np.float32,
    channels_jointly: bool = True,
):
    """Predict a dask array lazily, chunk by chunk, with halos from neighbouring chunks.

    Nothing is computed until the result is (``.compute()``, ``.to_zarr()``, ...); with a
    ``dask.distributed`` client the chunks are predicted on its workers. Spatial chunks are
    rounded up to multiples of the network's size multiple and the halo to a multiple too,
    so that, with the default overlap, the result equals :func:`predict_tiled` and
    whole-image prediction. A channel axis is kept in one chunk when channels are
    denoised jointly. On CPUs torch already spreads one chunk over every core, so use few
    dask threads per machine (``num_workers=1`` or one single-threaded worker process).

    Parameters
    ----------
    model : NetworkFactory, torch.nn.Module, (builder, state_dict) or object
        The network: a :class:`NetworkFactory`; a pair of a picklable zero-argument builder
        and its weights; a module (copied into a factory); or a model object such as a
        trained :class:`selfdenoise.Denoiser`, with a ``network_factory()`` method returning
        a factory. Such an object may also provide ``prediction_layout(array, axes)`` (used
        when ``layout`` is an axes string or None) and a ``normaliser`` with
        ``bind(layout)`` (used when ``normaliser`` is None).
    array : dask.array.Array or array-like
        Image in the user's axes order.
    layout : Layout, str or None
        Its layout, or its axes string (None: the model object's default).
    normaliser : object, optional
        As for :func:`predict_tiled`; must be picklable to run on a cluster.
    size_multiple, receptive_radius : int, optional
        Needed when ``model`` does not carry them (builder pairs and modules).
    tile_shape, overlap, batch_size, blend, tta, half, device, out_dtype
        As for :func:`predict_tiled`; ``device`` is resolved on each worker.
    channels_jointly : bool
        Used when ``layout`` is an axes string.

    Returns
    -------
    dask.array.Array
        The prediction, same shape as ``array``, dtype ``out_dtype``.
    """
    import dask.array as da

    array = array if isinstance(array, da.Array) else da.from_array(array)
    if not isinstance(layout, Layout) and hasattr(model, "prediction_layout"):
        layout = model.prediction_layout(array, layout)
    if layout is None:
        raise SelfDenoiseError("give the array's axes, e.g. predict_dask(model, array, 'ZYX').")
    if isinstance(layout, str):
        layout = Layout(layout, array.shape, channels_jointly)
    if tuple(array.shape) != layout.shape:
        raise SelfDenoiseError(
            f"array shape {array.shape} does not match its layout {layout.shape}."
        )
    if normaliser is None and getattr(model, "normaliser", None) is not None:
        normaliser = model.normaliser.bind(layout)
    factory = _as_factory(model, size_multiple, receptive_radius)
    radius = factory.receptive_radius if overlap is None else overlap
    halos = (radius,) * layout.ndim if isinstance(radius, int) else tuple(radius)
    if blend == "crop" and overlap is not None and min(halos) < factory.receptive_radius:
        warnings.warn(
            f"overlap {min(halos)} is below the network's receptive radius "
            f"({factory.receptive_radius}): seams may show between tiles and chunks; use an "
            f"overlap of at least {factory.receptive_radius}, or blend='hann'.",
            RuntimeWarning,
            stacklevel=2,
        )
    depth, chunks = _depth_and_chunks(array, layout, halos, factory.size_multiple)
    predictor = _ChunkPredictor(
        factory,
        layout,
        normaliser,
        dict(
            tile_shape=tile_shape,
            overlap=halos,
            batch_size=batch_size,
            blend=blend,
            tta=tta,
            half=half,
            device=device,
            out_dtype=out_dtype,
        ),
    )
    return array.rechunk(chunks).map_overlap(
        predictor,
        depth=depth,
        boundary="none",
        trim=True,
        dtype=np.dtype(out_dtype),
        meta=np.empty((0,) * array.ndim, dtype=out_dtype),
    )


def _as_factory(model, size_multiple, receptive_radius) -> NetworkFactory:
    if hasattr(model, "network_factory"):
        model = model.network_factory()
    if isinstance(model, NetworkFactory):
        return model
    if size_multiple is None or receptive_radius is None:
        raise SelfDenoiseError(
            "give size_multiple and receptive_radius with a bare network or builder."
        )
    if isinstance(model, torch.nn.Module):
        return NetworkFactory.from_module(model, size_multiple, receptive_radius)
    if isinstance(model, tuple) and len(model) == 2 and callable(model[0]):
        builder, state = model
        weights = {name: _to_numpy(value) for name, value in state.items()}
        return NetworkFactory(builder, weights, size_multiple, receptive_radius)
    raise SelfDenoiseError(
        "model must be a Denoiser, a NetworkFactory, a torch module or (builder, state_dict)."
    )


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _depth_and_chunks(array, layout: Layout, halos, multiple: int):
    """Halo depth per axis and chunks whose starts are multiples of ``multiple``.

    Aligned chunk starts keep the U-Net's pooling grid where it is for the whole image; a
    last chunk thinner than the halo is merged into the one before it.
    """
    depth, chunks = {}, {}
    for axis, letter in enumerate(layout.axes):
        size = array.shape[axis]
        if letter in SPATIAL_AXES:
            halo = min(round_up(halos[layout.spatial_axes.index(letter)], multiple), size)
            depth[axis] = halo
            chunks[axis] = _aligned_chunks(size, max(array.chunksize[axis], halo, 1), multiple)
        else:
            depth[axis] = 0
            whole = letter == "C" and layout.channels_jointly
            chunks[axis] = size if whole else array.chunksize[axis]
    return depth, chunks


def _aligned_chunks(size: int, chunk: int, multiple: int) -> tuple[int, ...]:
    chunk = round_up(chunk, multiple)
    sizes = [chunk] * (size // chunk)
    rest = size - sum(sizes)
    if rest and sizes and rest < chunk // 2:
        sizes[-1] += rest
    elif rest:
        sizes.append(rest)
    return tuple(sizes)


class _ChunkPredictor:
    """Picklable per-chunk function for ``map_overlap``."""

    def __init__(self, factory: NetworkFactory, layout: Layout, normaliser, settings: dict):
        self.factory = factory
        self.layout = layout
        self.normaliser = normaliser
        self.settings = settings

    def __call__(self, block: np.ndarray, block_info=None) -> np.ndarray:
        local = Layout(self.layout.axes, block.shape, self.layout.channels_jointly)
        starts = [0] * block.ndim
        if block_info is not None and block_info.get(0):
            starts = [start for start, _ in block_info[0]["array-location"]]
        normaliser = self.normaliser
        if normaliser is not None:
            normaliser = _ShiftedNormaliser(normaliser, local, self.layout, starts)
        device = self.settings["device"]
        from ..device import select_device

        network = self.factory.network(select_device(device) if isinstance(device, str) else device)
        return predict_tiled(
            network,
            np.asarray(block),
            local,
            normaliser,
            size_multiple=self.factory.size_multiple,
            # predict_dask warned once about a thin overlap: not again for every chunk.
            receptive_radius=min(self.factory.receptive_radius, *self.settings["overlap"]),
            **self.settings,
        )


class _ShiftedNormaliser:
    """Maps the samples of one chunk to the samples of the whole array for a normaliser."""

    def __init__(self, normaliser, local: Layout, whole: Layout, starts: list[int]):
        self.normaliser = normaliser
        self.local = local
        self.sizes = [whole.shape[whole.axes.index(a)] for a in whole.sample_axes]
        self.offsets = {a: starts[whole.axes.index(a)] for a in whole.sample_axes}

    def _whole_sample(self, sample: int) -> int:
        position = self.local.sample_position(sample)
        index = [position[a] + self.offsets[a] for a in self.offsets]
        return int(np.ravel_multi_index(index, self.sizes)) if index else 0

    def forward(self, block: np.ndarray, sample: int, out: np.ndarray | None = None):
        return self.normaliser.forward(block, self._whole_sample(sample), out=out)

    def inverse(self, block: np.ndarray, sample: int, out: np.ndarray | None = None):
        return self.normaliser.inverse(block, self._whole_sample(sample), out=out)
