"""Block matching and collaborative Wiener shrinkage of one plane (the engine of
:mod:`selfdenoise.collaborative`).

``settings`` holds ``patch`` (side), ``group`` (most patches per group), ``radius`` (search
distance), ``step`` (reference spacing), ``scale`` (factor on the noise standard deviation),
``floor`` (smallest noise variance), ``threshold`` (largest distance, in noise variances,
of a group member) and ``cancel`` (checked between blocks of references). Everything runs in
torch on the CPU; torch is imported when a plane is filtered.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .metrics import NoiseLine
from .tiling._cancel import raise_if_cancelled

_BLOCK_REFERENCES = 4096
"""References filtered together (a square block of the reference grid)."""


def _dct_matrix(size: int, torch: Any) -> Any:
    """Orthonormal DCT-II matrix (rows are the basis vectors)."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    n = torch.arange(size, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix.float()


def _positions(length: int, patch: int, step: int) -> list[int]:
    """Reference patch starts along one axis: every ``step`` pixels, plus the last one."""
    starts = list(range(0, length - patch + 1, step))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def _window_sums(values: Any, starts: Any, patch: int, dim: int, torch: Any) -> Any:
    """Sums of ``patch`` consecutive entries along ``dim``, starting at ``starts``."""
    running = torch.cumsum(values, dim=dim)
    zero = torch.zeros_like(running.narrow(dim, 0, 1))
    running = torch.cat([zero, running], dim=dim)
    return running.index_select(dim, starts + patch) - running.index_select(dim, starts)


def _match(pilot: Any, ref_rows: Any, ref_cols: Any, settings: dict, torch: Any):
    """Flat patch indices and distances ``[n_refs, group]`` of each reference's best matches.

    References are the grid ``ref_rows x ref_cols`` (row-major); a patch's index is
    ``row * (width - patch + 1) + col`` and its distance the mean squared pilot difference.
    """
    patch, radius, group = settings["patch"], settings["radius"], settings["group"]
    height, width = pilot.shape
    rows, cols = height - patch + 1, width - patch + 1
    source = pilot.float()
    padded = torch.nn.functional.pad(source[None, None], (radius,) * 4)[0, 0]
    offsets = torch.arange(-radius, radius + 1)
    n_refs, n_offsets = len(ref_rows) * len(ref_cols), len(offsets)
    distance = torch.empty((n_refs, n_offsets, n_offsets))
    for row, dy in enumerate(offsets.tolist()):
        # shifted[y, k, x] = pilot[y + dy, x + offsets[k]] (zero outside; such candidates are
        # dropped below, and a kept candidate's patch lies inside the image)
        shifted = padded[radius + dy : radius + dy + height].unfold(1, width, 1)
        diff = (source[:, None, :] - shifted) ** 2  # [height, n_dx, width]
        row_sums = sum(diff.index_select(0, ref_rows + i) for i in range(patch))
        dist = _window_sums(row_sums, ref_cols, patch, 2, torch)
        distance[:, row] = dist.permute(0, 2, 1).reshape(n_refs, n_offsets)
    cand_y = ref_rows[:, None, None, None] + offsets[None, None, :, None]
    cand_x = ref_cols[None, :, None, None] + offsets[None, None, None, :]
    valid = (cand_y >= 0) & (cand_y < rows) & (cand_x >= 0) & (cand_x < cols)
    distance = torch.where(valid.reshape(n_refs, n_offsets, n_offsets), distance, torch.inf)
    index = cand_y.clamp(0, rows - 1) * cols + cand_x.clamp(0, cols - 1)
    group = min(group, n_offsets**2)
    best_d, keep = torch.topk(distance.reshape(n_refs, -1), group, dim=1, largest=False)
    best_i = torch.gather(index.reshape(n_refs, -1), 1, keep)
    best_d = best_d / patch**2
    own = (ref_rows[:, None] * cols + ref_cols[None, :]).reshape(-1, 1).expand_as(best_i)
    return torch.where(torch.isfinite(best_d), best_i, own), best_d


def _shrink(noisy_groups: Any, pilot_groups: Any, variance: Any, settings: dict, torch: Any):
    """Wiener-shrunk groups ``[n, size, patch*patch]`` and each group's aggregation weight."""
    patch, size = settings["patch"], noisy_groups.shape[1]
    dct = _dct_matrix(patch, torch)
    dct_2d, dct_group = torch.kron(dct, dct), _dct_matrix(size, torch)
    noisy_coef = torch.einsum("ak,nkc->nac", dct_group, noisy_groups @ dct_2d.T)
    pilot_power = torch.einsum("ak,nkc->nac", dct_group, pilot_groups @ dct_2d.T) ** 2
    noise_power = (settings["scale"] ** 2 * variance)[:, None, None]
    gain = pilot_power / (pilot_power + noise_power)
    filtered = torch.einsum("ak,nac->nkc", dct_group, gain * noisy_coef) @ dct_2d
    weight = 1.0 / (variance * gain.square().sum(dim=(1, 2)).clamp_min(1e-12))
    return filtered, weight


def _filter_block(
    noisy: Any,
    pilot: Any,
    ref_rows: Any,
    ref_cols: Any,
    noise: NoiseLine,
    settings: dict,
    torch: Any,
) -> tuple[Any, Any]:
    """Weighted sums of the filtered patches and their weights over one window."""
    import torch.nn.functional as F

    patch = settings["patch"]
    height, width = pilot.shape
    cols = width - patch + 1
    index, distance = _match(pilot, ref_rows, ref_cols, settings, torch)
    noisy_patches = F.unfold(noisy[None, None], patch)[0].T  # [n_patches, patch*patch]
    pilot_patches = F.unfold(pilot[None, None], patch)[0].T
    signal = pilot_patches[index[:, 0]].mean(dim=1).double().numpy()
    variance = torch.from_numpy(noise.variance(signal)).float().clamp_min(settings["floor"])
    similar = (distance <= settings["threshold"] * variance[:, None]).sum(dim=1).clamp_min(1)
    sizes = 2 ** torch.floor(torch.log2(similar.double())).long()
    window = torch.from_numpy(np.outer(np.kaiser(patch, 2.0), np.kaiser(patch, 2.0))).float()
    pixel = (torch.arange(patch)[:, None] * width + torch.arange(patch)[None, :]).reshape(-1)
    total = torch.zeros(height * width)
    norm = torch.zeros(height * width)
    for size in sizes.unique().tolist():
        chosen = torch.nonzero(sizes == size)[:, 0]
        members = index[chosen, :size]
        filtered, weight = _shrink(
            noisy_patches[members], pilot_patches[members], variance[chosen], settings, torch
        )
        starts = (members // cols) * width + members % cols
        targets = (starts[..., None] + pixel).reshape(-1)
        per_pixel = (weight[:, None, None] * window.reshape(-1)).expand_as(filtered)
        total.index_add_(0, targets, (per_pixel * filtered).reshape(-1))
        norm.index_add_(0, targets, per_pixel.reshape(-1))
    return total.reshape(height, width), norm.reshape(height, width)


def _window(starts: list[int], patch: int, radius: int, length: int) -> tuple[int, int]:
    """The stretch of an axis that holds every candidate of references at ``starts``."""
    return max(0, starts[0] - radius), min(length, starts[-1] + patch + radius)


def filter_plane(noisy: np.ndarray, pilot: np.ndarray, noise: NoiseLine, settings: dict):
    """The collaborative Wiener estimate of one 2D plane (float32).

    References are taken in square blocks of about :data:`_BLOCK_REFERENCES`; each block is
    filtered on the window that holds its candidates, so memory does not grow with the plane.
    """
    import torch

    patch, radius = settings["patch"], settings["radius"]
    height, width = pilot.shape
    # torch wants writable memory: a read-only input (e.g. a memory-mapped file) is copied
    noisy_t = torch.from_numpy(np.require(noisy, np.float32, ["C", "W"]))
    pilot_t = torch.from_numpy(np.require(pilot, np.float32, ["C", "W"]))
    total, norm = torch.zeros(height, width), torch.zeros(height, width)
    ref_rows = _positions(height, patch, settings["step"])
    ref_cols = _positions(width, patch, settings["step"])
    side = max(1, math.isqrt(_BLOCK_REFERENCES))
    for first_row in range(0, len(ref_rows), side):
        block_rows = ref_rows[first_row : first_row + side]
        top, bottom = _window(block_rows, patch, radius, height)
        for first_col in range(0, len(ref_cols), side):
            raise_if_cancelled(settings.get("cancel"))
            block_cols = ref_cols[first_col : first_col + side]
            left, right = _window(block_cols, patch, radius, width)
            window = (slice(top, bottom), slice(left, right))
            block_total, block_norm = _filter_block(
                noisy_t[window],
                pilot_t[window],
                torch.tensor(block_rows) - top,
                torch.tensor(block_cols) - left,
                noise,
                settings,
                torch,
            )
            total[window] += block_total
            norm[window] += block_norm
    estimate = torch.where(norm > 0, total / norm.clamp_min(1e-30), pilot_t)
    return estimate.numpy()
