"""Helpers shared by the command implementations: rank-0 printing, reading, warnings."""

from __future__ import annotations

import os
import sys

from ..registry import get_method, method_names


def is_main_process() -> bool:
    """Rank 0 under torchrun (the engine sets up and tears down the process group)."""
    return int(os.environ.get("RANK", "0")) == 0


def say(*args, **kwargs) -> None:
    """Print on rank 0 only."""
    if is_main_process():
        print(*args, **kwargs, flush=True)


def masking_methods() -> list[str]:
    """Self-supervised methods that mask pixels (those --struct-axis works with)."""
    return [n for n in method_names(self_supervised=True) if get_method(n).uses_masking]


def read(path: str, memmap: bool = False, series: int | None = None):
    """Read an image file (see :func:`selfdenoise.io.read_image`)."""
    from ..io import read_image

    return read_image(path, memmap=memmap, series=series)


def given(*paths: str | None) -> list[str]:
    """The paths that were given (options left out are ``None``)."""
    return [p for p in paths if p]


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. which TIFF series was read) as one ``warning:`` line each."""
    if is_main_process():
        print(f"warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
