"""The JSON part of model files and checkpoints, checked field by field (torch-free).

A model file is untrusted input: every field is checked against the same rules as a new
configuration before anything is built from it, and every problem is a one-line
:class:`~selfdenoise.SelfDenoiseError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._errors import SelfDenoiseError
from .config import (
    NEIGHBOUR_PAIRS,
    DenoiserConfig,
    check_lambda_inv,
    check_regulariser_weight,
)
from .data import Normaliser

MODEL_FORMAT = "napari-selfdenoise-model"
"""The ``format`` entry of model files and checkpoints."""

MAX_IN_CHANNELS = 256
"""Most input channels a model may have."""


@dataclass
class ModelMetadata:
    """Checked contents of a model file's JSON."""

    config: DenoiserConfig
    normaliser: Normaliser
    in_channels: int
    lambda_inv: float | None = None
    history: list[dict] = field(default_factory=list)
    steps_trained: int = 0
    regulariser_weight: float | None = None
    neighbour_pairs: str | None = None


def check_metadata(metadata: Any, what: str = "model file", path: Any = None) -> ModelMetadata:
    """Check a model file's metadata and return it typed.

    Raises
    ------
    SelfDenoiseError
        For a foreign file, a missing field, or any field outside the rules of a new model.
    """
    if not isinstance(metadata, dict) or metadata.get("format") != MODEL_FORMAT:
        name = f"'{path}'" if path is not None else "this"
        raise SelfDenoiseError(f"{name} is not a napari-selfdenoise {what}.")
    for key in ("config", "normaliser", "in_channels"):
        if key not in metadata:
            raise SelfDenoiseError(f"the {what} is incomplete (missing {key!r}).")
    config = DenoiserConfig.from_dict(metadata["config"])
    in_channels = metadata["in_channels"]
    if isinstance(in_channels, bool) or not isinstance(in_channels, int):
        raise SelfDenoiseError(
            f"in_channels in the {what} must be an integer; got {in_channels!r}."
        )
    if not 1 <= in_channels <= MAX_IN_CHANNELS:
        raise SelfDenoiseError(
            f"in_channels in the {what} must be between 1 and {MAX_IN_CHANNELS}; got {in_channels}."
        )
    normaliser = Normaliser.from_dict(metadata["normaliser"])
    _check_channels(config, normaliser, in_channels, what)
    lambda_inv = metadata.get("lambda_inv")
    if lambda_inv is not None:
        check_lambda_inv(lambda_inv)
    regulariser_weight = metadata.get("regulariser_weight")
    if regulariser_weight is not None:
        check_regulariser_weight(regulariser_weight)
    neighbour_pairs = metadata.get("neighbour_pairs")
    if neighbour_pairs is not None and neighbour_pairs not in NEIGHBOUR_PAIRS:
        raise SelfDenoiseError(
            f"neighbour_pairs in the {what} must be one of {', '.join(NEIGHBOUR_PAIRS)}."
        )
    history = _check_history(metadata.get("history", []), what)
    steps = metadata.get("steps_trained", history[-1]["step"] if history else 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise SelfDenoiseError(f"steps_trained in the {what} must be an integer >= 0.")
    return ModelMetadata(
        config,
        normaliser,
        in_channels,
        lambda_inv,
        history,
        steps,
        regulariser_weight,
        neighbour_pairs,
    )


def _check_channels(config, normaliser: Normaliser, in_channels: int, what: str) -> None:
    if not config.channels_jointly:
        if in_channels != 1:
            raise SelfDenoiseError(
                f"the {what} denoises channels one by one but has in_channels={in_channels}."
            )
        return
    if len(normaliser.offset) != in_channels:
        raise SelfDenoiseError(
            f"the normaliser in the {what} has {len(normaliser.offset)} entries for "
            f"{in_channels} channel(s)."
        )


def _check_history(history: Any, what: str) -> list[dict]:
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise SelfDenoiseError(f"the history in the {what} must be a list of records.")
    for row in history:
        step = row.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise SelfDenoiseError(f"every history record in the {what} needs a step >= 0.")
        val = row.get("val_loss")
        if val is not None and not isinstance(val, int | float):
            raise SelfDenoiseError(f"history val_loss values in the {what} must be numbers.")
    return list(history)


def metadata_dict(
    config: DenoiserConfig,
    normaliser: Normaliser | None,
    in_channels: int | None,
    lambda_inv: float | None,
    history: list[dict],
    steps_trained: int,
    regulariser_weight: float | None = None,
    neighbour_pairs: str | None = None,
) -> dict:
    """The JSON metadata written with a model or checkpoint."""
    from ._version import __version__

    return {
        "format": MODEL_FORMAT,
        "version": __version__,
        "config": config.to_dict(),
        "normaliser": normaliser.to_dict() if normaliser else None,
        "in_channels": in_channels,
        "lambda_inv": lambda_inv,
        "regulariser_weight": regulariser_weight,
        "neighbour_pairs": neighbour_pairs,
        "history": history,
        "steps_trained": steps_trained,
    }
