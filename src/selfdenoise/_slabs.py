"""Slabs with a halo, for the steps after the network (detail restoration, collaborative
filter): a large sample is read piece by piece along one axis, each piece with enough
neighbouring planes that its core comes out as in one piece, and each core is written back
only once no later piece reads it (the steps read the prediction they overwrite)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .axes import Layout

MAX_SLAB_ELEMENTS = 2**24
"""A sample (or plane) larger than this is processed in slabs with a halo."""


def slabs(
    length: int, plane: int, halo: int, max_elements: int, align: int = 1
) -> Iterator[tuple[slice, slice, slice]]:
    """``(read, core_in_read, core)`` slices along an axis of ``length`` planes of ``plane``.

    A slab keeps at least ``halo`` planes of its own (less the rounding to ``align``), so no
    plane is read more than three times however large the planes are. With ``align``, every
    core and every read starts on a multiple of it (a reference grid that must not shift).
    """
    step = max(halo, 1, max_elements // max(plane, 1) - 2 * halo)
    if align > 1:
        step = max(align, step - step % align)
    for start in range(0, length, step):
        stop = min(length, start + step)
        low, high = max(0, start - halo), min(length, stop + halo)
        low -= low % align
        yield slice(low, high), slice(start - low, stop - low), slice(start, stop)


def write_finished(
    denoised: Any,
    layout: Layout,
    sample: int,
    pending: list[tuple[slice, Any]],
    first_unread: int,
    place: Callable[[slice], list[slice]],
) -> list[tuple[slice, Any]]:
    """Write the pending ``(core, values)`` that end before ``first_unread``; return the rest.

    ``place(core)`` gives the spatial slices of a core in the sample; ``values`` are
    ``(C, *spatial)`` blocks.
    """
    kept = []
    for core, values in pending:
        if core.stop <= first_unread:
            denoised[layout.block_index(sample, place(core))] = layout.canonical_to_block(values)
        else:
            kept.append((core, values))
    return kept
