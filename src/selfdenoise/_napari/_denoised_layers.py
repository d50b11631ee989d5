"""Denoised layers: run a model on image layers in a widget's worker and add the results.

Shared by the Train and Denoise widgets. Every result is a NEW layer named after its input and
the method (:func:`denoised_name`), with the input's scale, translate and metadata plus the
provenance of the model; an input layer is never modified.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._feedback import Outcome, notify_info, notify_warning, run_guarded
from ._jobs import predict_job, use_device
from ._layers import add_derived_image, base_data, guess_layer_axes
from ._session import SESSION_MODELS, method_label

if TYPE_CHECKING:
    from napari.layers import Image, Layer

    from ..api import Denoiser
    from ._base import WorkerWidget


def denoised_name(layer_name: str, method: str) -> str:
    """Name of the output layer, e.g. ``'noisy camera denoised (Noise2Same)'``."""
    return f"{layer_name} denoised ({method_label(method)})"


def add_denoised_layer(
    viewer: Any, source: Layer, data: Any, denoiser: Denoiser, options: dict
) -> Image:
    """Add the prediction as a new layer on top of ``source`` (same scale/translate/metadata)."""
    entry = SESSION_MODELS.find(denoiser)
    provenance = {
        "method": denoiser.method,
        "source_layer": source.name,
        "model": entry.name if entry else "",
        "model_path": entry.path if entry else None,
        **{k: v for k, v in options.items() if v is not None},
    }
    return add_derived_image(
        viewer,
        source,
        data,
        denoised_name(source.name, denoiser.method),
        kind="denoised",
        selfdenoise_metadata=provenance,
    )


def denoise_into_new_layers(
    owner: WorkerWidget,
    denoiser: Denoiser,
    layers: list[Layer],
    on_added: Callable[[list[Image]], None],
    axes: str | None = None,
    options: dict | None = None,
    progress: Callable[[int, int, float | None], None] | None = None,
    cancel: threading.Event | None = None,
    device: str = "auto",
) -> Any:
    """Denoise ``layers`` one after the other in ``owner``'s worker; add the results as layers.

    Parameters
    ----------
    owner : WorkerWidget
        Widget that runs the job and reports errors.
    denoiser : selfdenoise.Denoiser
        A trained model.
    layers : list of napari.layers.Image
        Inputs (read, never modified).
    on_added : callable
        Gets the list of new layers in the GUI thread.
    axes : str, optional
        Axes of every layer; guessed per layer by default.
    options : dict, optional
        ``tile_shape``, ``overlap``, ``tta`` for :meth:`~selfdenoise.Denoiser.predict`.
    progress : callable, optional
        ``progress(done_tiles, total_tiles, eta)``, called from the worker thread.
    cancel : threading.Event, optional
        Set it to stop between tile batches.
    device : str
        'auto' (the model's own device), 'cpu', 'cuda' or 'mps'.
    """
    options = dict(options or {})
    cancel = cancel or threading.Event()
    inputs = [
        (layer, base_data(layer), axes or guess_layer_axes(layer, denoiser.config.ndim))
        for layer in layers
    ]

    def work() -> Outcome:
        results = []
        moved = run_guarded(use_device, denoiser, device)
        if not moved.ok:
            return moved
        for _, data, layer_axes in inputs:
            outcome = predict_job(moved.value, data, layer_axes, options, progress, cancel)
            if not outcome.ok:
                return outcome
            results.append(outcome.value)
        return Outcome(value=results)

    def done(outcome: Outcome) -> None:
        if outcome.cancelled:
            notify_info("Denoising cancelled; no layer was added.")
        if not outcome.ok:
            on_added([])
            return
        new_layers = [
            add_denoised_layer(owner.viewer, layer, result, denoiser, options)
            for (layer, _, _), result in zip(inputs, outcome.value, strict=True)
        ]
        on_added(new_layers)

    return owner.start_job(work, on_done=done, on_warning=notify_warning)
