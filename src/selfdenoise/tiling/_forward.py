"""Running the network on batches of tiles: device transfer, reduced precision, test-time
augmentation and recovery from out-of-memory errors."""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Callable

import numpy as np
import torch

from .._errors import SelfDenoiseError
from ..device import is_out_of_memory
from ._cancel import PredictionCancelled

DIHEDRAL = tuple((turns, flip) for flip in (False, True) for turns in range(4))
"""The 8 symmetries of a square in YX: 0-3 quarter turns, with or without an X flip."""


class TileTooLarge(RuntimeError):
    """One tile alone does not fit in device memory (internal: the caller shrinks the tile)."""


def _transform(x: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, turns, dims=(-2, -1)) if turns else x


def _untransform(y: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    if turns:
        y = torch.rot90(y, -turns, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if flip else y


def fast_memory_format(device: torch.device, ndim: int) -> torch.memory_format:
    """Channels-last on CPU and CUDA: oneDNN and cuDNN convolutions run faster in it (about
    1.5x for this U-Net on a CPU in 2D, 1.3x in 3D)."""
    if device.type not in ("cpu", "cuda"):
        return torch.contiguous_format
    return torch.channels_last if ndim == 2 else torch.channels_last_3d


def convert_memory_format(network: torch.nn.Module, memory_format: torch.memory_format) -> bool:
    """Put the convolution weights of ``network`` in ``memory_format``; True if that changed
    anything."""
    if memory_format == torch.contiguous_format:
        return False
    ndim = 4 if memory_format == torch.channels_last else 5
    weights = [p for p in network.parameters() if p.ndim == ndim]
    if not weights or all(w.is_contiguous(memory_format=memory_format) for w in weights):
        return False
    network.to(memory_format=memory_format)
    return True


def prediction_copy(
    network: torch.nn.Module, device: torch.device, memory_format: torch.memory_format
) -> torch.nn.Module:
    """A private copy of ``network`` for one prediction: eval mode, on ``device``, weights in
    ``memory_format``, no gradients.

    Prediction never changes the caller's module (its mode, device, memory format or
    weights), so one model may serve several predictions at once, or predict while it
    trains in another thread. The copy reads the weights as they are when the call starts
    (while another thread trains, that may be partway through an optimiser step). It costs
    one copy of the weights (a few MB for the default U-Nets), small next to a forward pass.
    """
    with torch.no_grad():
        private = copy.deepcopy(network)
    for parameter in private.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    private.eval().to(device)
    convert_memory_format(private, memory_format)
    return private


class ForwardMonitor:
    """Forward hooks on a private network copy: work done so far, and a way to abort.

    The work of each leaf module is its output size times the weights per output value
    (a convolution's ``in_channels * kernel volume``; 1 for weightless layers), close to
    its share of the arithmetic. Work is counted per thread, so :meth:`calibrate` may run a
    small probe on the caller's thread while a long forward pass runs on another; with the
    work per voxel it measures, the progress of that pass is known as a fraction.
    Setting :attr:`abort` makes the next layer raise :class:`PredictionCancelled`.

    Parameters
    ----------
    network : torch.nn.Module
        The prediction's private copy (hooks are added to it).
    probe : torch.Tensor
        Small input ``(1, C, *spatial)`` (sides: multiples of the size multiple) for
        :meth:`calibrate`, on the network's device and in its memory format.
    """

    def __init__(self, network: torch.nn.Module, probe: torch.Tensor):
        self.network = network
        self.probe = probe
        self.abort = threading.Event()
        self.work_per_voxel: float | None = None
        self._work: dict[int, float] = {}
        self._probing: int | None = None
        for module in network.modules():
            if next(module.children(), None) is None:
                module.register_forward_pre_hook(self._before)
                module.register_forward_hook(self._after)

    def _before(self, module, args) -> None:
        if self.abort.is_set():
            raise PredictionCancelled("prediction cancelled")

    def _after(self, module, args, output) -> None:
        weight = getattr(module, "weight", None)
        per_output = 1
        if isinstance(weight, torch.Tensor) and weight.ndim > 2:
            per_output = weight.numel() // max(1, weight.shape[0])
        if isinstance(output, torch.Tensor):
            thread = threading.get_ident()
            self._work[thread] = self._work.get(thread, 0.0) + output.numel() * per_output

    @property
    def work(self) -> float:
        """Work done since :meth:`reset`, by every thread but a running probe."""
        return sum(v for k, v in list(self._work.items()) if k != self._probing)

    def reset(self) -> None:
        """Start counting again (call while no forward pass runs)."""
        self._work.clear()

    def calibrate(self) -> float:
        """Measure (once) the work of a forward pass per input voxel; 0.0 if the probe fails."""
        if self.work_per_voxel is None:
            self._probing = thread = threading.get_ident()
            try:
                with torch.inference_mode():
                    self.network(self.probe)
                done = self._work.get(thread, 0.0)
            except Exception:  # e.g. a network that rejects small inputs: no fraction
                done = 0.0
            finally:
                self._work.pop(thread, None)
                self._probing = None
            self.work_per_voxel = done / max(1, self.probe[:, 0].numel())
        return self.work_per_voxel


class BatchForward:
    """Callable that predicts a CPU batch ``(B, C, *tile)`` and returns float32 numpy.

    Parameters
    ----------
    network : torch.nn.Module
        In eval mode, on ``device``.
    device : torch.device
        Where the network runs.
    amp_dtype : torch.dtype or None
        Autocast dtype (bf16/fp16 on CUDA), None for float32.
    tta : bool
        Average the 8 YX flips/rotations. Rotations by 90 degrees swap the tile's Y and X
        sides, which the network accepts (both are multiples of its size multiple), so
        non-square tiles need no padding.
    batch_size : int
        Largest sub-batch sent at once; halved on out-of-memory errors.
    memory_format : torch.memory_format
        Layout of the tensors sent to the network.
    notify : callable
        Receives one-line messages (precision or batch-size changes).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        tta: bool,
        batch_size: int,
        memory_format: torch.memory_format,
        notify: Callable[[str], None],
    ):
        self.network = network
        self.device = device
        self.amp_dtype = amp_dtype
        self.tta = tta
        self.batch_size = batch_size
        self.memory_format = memory_format
        self.notify = notify

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        outputs = []
        start = 0
        while start < len(batch):
            chunk = batch[start : start + self.batch_size]
            try:
                outputs.append(self._predict(chunk))
                start += len(chunk)
                continue
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
            self._release_memory()
            if self.batch_size == 1:
                raise TileTooLarge("one tile does not fit in device memory")
            self.batch_size //= 2
            self.notify(f"out of device memory: now {self.batch_size} tile(s) per batch.")
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _predict(self, chunk: torch.Tensor) -> np.ndarray:
        x = chunk.to(self.device, non_blocking=True)
        prediction = self._run(x)
        if self.amp_dtype == torch.float16 and not bool(torch.isfinite(prediction).all()):
            self.notify("half precision overflowed; predicting in float32 from now on.")
            self.amp_dtype = None
            prediction = self._run(x)
        return prediction.cpu().numpy()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            if not self.tta:
                return self._network(x)
            total = None
            for turns, flip in DIHEDRAL:
                y = _untransform(self._network(_transform(x, turns, flip)), turns, flip)
                total = y.clone() if total is None else total.add_(y)
            return total.div_(len(DIHEDRAL))

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        y = self.network(x.contiguous(memory_format=self.memory_format)).float()
        if y.shape[2:] != x.shape[2:]:
            raise SelfDenoiseError(
                f"the network returned shape {tuple(y.shape)} for input {tuple(x.shape)}; "
                "it must keep the spatial shape."
            )
        return y

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
