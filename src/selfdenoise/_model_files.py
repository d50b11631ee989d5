"""Reading and writing a :class:`~selfdenoise.Denoiser`'s files: model files (safetensors or
a BioImage Model Zoo package) and resumable training checkpoints (torch-free at import)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._errors import SelfDenoiseError
from ._metadata import ModelMetadata, check_metadata
from .config import DenoiserConfig

__all__ = ["checkpoint_writer", "read_checkpoint", "read_model_file", "weighted_network"]


def checkpoint_writer(
    config: DenoiserConfig, rank: int, metadata: Callable[[list, int], dict]
) -> Callable[[dict], None] | None:
    """A function that writes a run's state into ``checkpoint_dir`` (rank 0 only), or ``None``.

    ``metadata(history, step)`` gives the JSON part. Errors propagate to the run, which
    reports them once and trains on.
    """
    training = config.training
    if not (training.checkpoint_every and training.checkpoint_dir) or rank != 0:
        return None
    from .train import save_resumable

    folder = Path(training.checkpoint_dir)

    def write(state: dict) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        extra = metadata(list(state["history"]), int(state["step"]))
        save_resumable(folder / "checkpoint.pt", state, extra)

    return write


def read_checkpoint(config: DenoiserConfig, path: str | Path) -> tuple[dict, ModelMetadata]:
    """A checkpoint's run state and checked metadata; it must match ``config``'s method, axes,
    channel handling and network."""
    from .io import load_checkpoint

    state = load_checkpoint(path)
    meta = check_metadata(state.get("extra"), "training checkpoint", path)
    theirs = meta.config
    for name in ("method", "axes", "channels_jointly"):
        if getattr(config, name) != getattr(theirs, name):
            raise SelfDenoiseError(
                f"the checkpoint '{path}' was trained with {name} {getattr(theirs, name)!r}, "
                f"not {getattr(config, name)!r}; resume with the same {name}."
            )
    if config.network != theirs.network:
        raise SelfDenoiseError(
            f"the checkpoint '{path}' has another network shape; resume with its settings."
        )
    return state, meta


def read_model_file(path: str | Path) -> tuple[dict, ModelMetadata]:
    """Weights and checked metadata of a ``.safetensors`` model file or an exported BMZ
    ``.zip``; never unpickles."""
    from .io import load_bundle

    if str(path).lower().endswith(".zip"):  # a BioImage Model Zoo package we exported
        from .export._load import read_bmz

        state_dict, metadata = read_bmz(path)
    else:
        state_dict, metadata = load_bundle(path)
    return state_dict, check_metadata(metadata, path=path)


def weighted_network(meta: ModelMetadata, state_dict: dict, path: Any) -> Any:
    """The network ``meta`` describes, holding ``state_dict``, in eval mode."""
    from .nets import build_network

    network = build_network(meta.config.network, meta.config.ndim, meta.in_channels)
    try:
        network.load_state_dict(state_dict)
    except RuntimeError:
        raise SelfDenoiseError(
            f"the weights in '{path}' do not match its network settings; the file is damaged."
        ) from None
    return network.eval()
