"""Model files and resumable training checkpoints.

Models: one ``.safetensors`` file holding the weights and, in its metadata, a JSON document
(configuration, normalisation, history, version). Loading a model never unpickles anything.
Checkpoints use ``torch.save`` and are read back with ``torch.load(weights_only=True)``.
Both are written atomically (temporary sibling, then rename) with the permissions the umask
gives, so colleagues can read them where the umask allows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import SelfDenoiseError
from ._files import one_line, replace_atomically

if TYPE_CHECKING:
    import torch

__all__ = [
    "BUNDLE_FORMAT_VERSION",
    "bundle_path",
    "load_bundle",
    "load_checkpoint",
    "save_bundle",
    "save_checkpoint",
]

BUNDLE_FORMAT_VERSION = 1
"""Version of the model file layout; bumped when older readers could misread a file."""


def bundle_path(path: str | os.PathLike) -> Path:
    """The file :func:`save_bundle` writes for ``path`` (``.safetensors`` added if no suffix)."""
    path = Path(path)
    return path.with_suffix(".safetensors") if not path.suffix else path


def save_bundle(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], metadata: dict
) -> Path:
    """Save a model as one ``.safetensors`` file (weights + JSON metadata, no pickle).

    Parameters
    ----------
    path : str or path-like
        Target file; ``.safetensors`` is appended when the name has no suffix. An existing
        file is replaced only once the new one is complete.
    state_dict : dict of str to torch.Tensor
        Weights and buffers (moved to the CPU and made contiguous).
    metadata : dict
        JSON-serialisable description (configuration, normalisation, history, ...).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    SelfDenoiseError
        If the file cannot be written (missing folder, no permission, disk full).
    """
    from safetensors.torch import save_file

    path = bundle_path(path)
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in state_dict.items()}
    header = {
        "selfdenoise": json.dumps(metadata),
        "selfdenoise_format": str(BUNDLE_FORMAT_VERSION),
        "format": "pt",
    }
    replace_atomically(path, lambda target: save_file(tensors, str(target), metadata=header))
    return path


def _not_a_model(path: Path, reason: str) -> SelfDenoiseError:
    return SelfDenoiseError(
        f"'{path}' is not a napari-selfdenoise model file ({reason}); "
        "choose a .safetensors file saved by napari-selfdenoise."
    )


def _check_safetensors_header(path: Path) -> None:
    """Reject files that cannot be safetensors before handing them to the parser."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(9)
    header_length = int.from_bytes(start[:8], "little") if len(start) == 9 else 0
    if 0 < header_length <= size - 8 and start[8:9] == b"{":
        return
    if start[:2] == b"PK" or start[:1] == b"\x80":
        raise _not_a_model(path, "it looks like a pickled PyTorch file, which is never loaded")
    raise _not_a_model(path, "not a safetensors file, or truncated")


def load_bundle(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a model saved by :func:`save_bundle`, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        The ``.safetensors`` file (the suffix may be left out).

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        Tensors on the CPU.
    metadata : dict
        The JSON metadata given to :func:`save_bundle`.

    Raises
    ------
    SelfDenoiseError
        If the file is missing, corrupt, truncated, not safetensors, or not ours.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists() and not path.suffix and path.with_suffix(".safetensors").exists():
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise SelfDenoiseError(f"model file '{path}' does not exist; check the path.")
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        if "selfdenoise" not in header:
            raise _not_a_model(path, "no napari-selfdenoise metadata")
        version = int(header.get("selfdenoise_format", "1"))
        if version > BUNDLE_FORMAT_VERSION:
            raise SelfDenoiseError(
                f"'{path}' was saved by a newer napari-selfdenoise (model format {version}); "
                "upgrade napari-selfdenoise to load it."
            )
        metadata = json.loads(header["selfdenoise"])
        if not isinstance(metadata, dict):
            raise _not_a_model(path, "its metadata is not a JSON object")
        state_dict = load_file(str(path), device="cpu")
    except SelfDenoiseError:
        raise
    except Exception as exc:  # safetensors, JSON and integer parsing errors
        raise _not_a_model(path, one_line(exc)) from exc
    return state_dict, metadata


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Save a resumable training state with ``torch.save`` (atomically).

    Parameters
    ----------
    path : str or path-like
        Target file (conventionally ``.pt``).
    state : dict
        Model, optimiser and scheduler state dicts, the step, RNG states as tensors and
        JSON-able extras: only what ``torch.load(weights_only=True)`` accepts (tensors,
        dicts, lists, tuples, strings, numbers, booleans, ``None``).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    SelfDenoiseError
        If the file cannot be written; an earlier checkpoint at ``path`` is kept.
    """
    import torch

    path = Path(path)
    replace_atomically(path, lambda target: torch.save(state, target))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no code runs).

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.
    map_location : str or torch.device
        Where tensors are loaded (default: the CPU).

    Returns
    -------
    dict

    Raises
    ------
    SelfDenoiseError
        If the file is missing, corrupt or holds anything but plain data and tensors.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise SelfDenoiseError(f"checkpoint '{path}' does not exist; check the path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and type-restriction errors
        raise SelfDenoiseError(
            f"cannot resume from '{path}': not a valid napari-selfdenoise checkpoint "
            f"({one_line(exc)})."
        ) from exc
    if not isinstance(state, dict):
        raise SelfDenoiseError(f"cannot resume from '{path}': the checkpoint holds no state.")
    return state
