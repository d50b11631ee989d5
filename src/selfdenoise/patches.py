"""Training patches: their shape, random sampling, augmentation and the validation split.

Everything here is numpy: training batches are assembled on the CPU and moved to the device
by :mod:`selfdenoise.train`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._errors import SelfDenoiseError


def default_patch_shape(ndim: int) -> tuple[int, ...]:
    """64x64 in 2D, 16x64x64 in 3D."""
    return (64, 64) if ndim == 2 else (16, 64, 64)


def fit_patch_shape(
    requested: tuple[int, ...] | None,
    spatial_shapes: Sequence[tuple[int, ...]],
    size_multiple: int,
) -> tuple[int, ...]:
    """Patch shape that fits every training image, a multiple of ``size_multiple``.

    A patch shape the user asked for must fit (error otherwise); the default shrinks to the
    smallest image.
    """
    ndim = len(spatial_shapes[0])
    smallest = tuple(min(s[d] for s in spatial_shapes) for d in range(ndim))
    if requested is not None:
        if len(requested) != ndim:
            raise SelfDenoiseError(
                f"patch shape {requested} has {len(requested)} sides but the data is {ndim}D."
            )
        if any(p > s for p, s in zip(requested, smallest, strict=True)):
            raise SelfDenoiseError(
                f"image ({'x'.join(map(str, smallest))}) is too small for the patch "
                f"({'x'.join(map(str, requested))}); choose a smaller patch shape."
            )
        bad = [p for p in requested if p % size_multiple]
        if bad:
            raise SelfDenoiseError(
                f"patch sides must be multiples of {size_multiple} for this network; "
                f"got {'x'.join(map(str, requested))}."
            )
        return tuple(requested)
    patch = []
    for want, have in zip(default_patch_shape(ndim), smallest, strict=True):
        side = min(want, have) // size_multiple * size_multiple
        if side < size_multiple:
            raise SelfDenoiseError(
                f"image ({'x'.join(map(str, smallest))}) is too small for this network; "
                f"each side must be at least {size_multiple} pixels (use a shallower network)."
            )
        patch.append(side)
    return tuple(patch)


@dataclass
class _Region:
    """A spatial box of one canonical sample of one training array."""

    array_index: int
    sample: int
    start: tuple[int, ...]
    stop: tuple[int, ...]

    def positions(self, patch_shape: tuple[int, ...]) -> int:
        return math.prod(
            max(0, b - a - p + 1)
            for a, b, p in zip(self.start, self.stop, patch_shape, strict=True)
        )


def _whole_regions(arrays: Sequence[np.ndarray]) -> list[_Region]:
    """One region per canonical sample, covering all of it."""
    return [
        _Region(index, n, (0,) * (array.ndim - 2), tuple(array.shape[2:]))
        for index, array in enumerate(arrays)
        for n in range(array.shape[0])
    ]


class PatchSampler:
    """Random training patches and a fixed set of validation patches.

    Parameters
    ----------
    arrays : sequence of ndarray
        Normalised canonical arrays ``(N, C, *spatial)``, possibly of different shapes.
    patch_shape : tuple of int
        Spatial patch shape.
    validation_fraction : float
        Share of each array held out for validation: a slab at the end of the longest
        spatial axis when it is at least twice the patch, else whole samples when there are
        several, else nothing (then validation patches overlap training, and
        :attr:`validation_is_held_out` is False).
    augment : bool
        Random flips in YX and, for square patches, rot90.
    skip_background : float
        Drop patches whose standard deviation is below this quantile of sampled patches.
    seed : int
        Seed of the sampler's random generator.
    max_validation_patches : int
        Cap on the number of validation patches.
    targets : sequence of ndarray, optional
        Normalised targets aligned with ``arrays`` (supervised training).
    validation : sequence of ndarray, optional
        A separate validation source: normalised canonical arrays that the validation
        patches are drawn from (without targets). Then nothing of ``arrays`` is held out,
        ``validation_fraction`` is ignored and :attr:`validation_is_held_out` is True.
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        patch_shape: tuple[int, ...],
        validation_fraction: float = 0.1,
        augment: bool = True,
        skip_background: float = 0.0,
        seed: int = 0,
        max_validation_patches: int = 64,
        targets: Sequence[np.ndarray] | None = None,
        validation: Sequence[np.ndarray] | None = None,
    ) -> None:
        self.arrays = list(arrays)
        self.targets = list(targets) if targets is not None else None
        self.patch_shape = tuple(patch_shape)
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        if validation is not None:
            self.train_regions, _ = self._split(0.0)
            self._validation_source = list(validation)
            self.validation_regions = _whole_regions(self._validation_source)
            self._validation_targets = None
            self.validation_is_held_out = True
        else:
            self.train_regions, self.validation_regions = self._split(validation_fraction)
            self._validation_source, self._validation_targets = self.arrays, self.targets
            self.validation_is_held_out = bool(self.validation_regions) and validation_fraction > 0
        if not self.validation_regions:
            self.validation_regions = self.train_regions
        self._weights = np.array([r.positions(self.patch_shape) for r in self.train_regions], float)
        self._weights /= self._weights.sum()
        self.background_threshold = self._background_threshold(skip_background)
        self.validation_patches = self._validation_patches(max_validation_patches, seed)

    @property
    def n_channels(self) -> int:
        return self.arrays[0].shape[1]

    def _split(self, fraction: float) -> tuple[list[_Region], list[_Region]]:
        train: list[_Region] = []
        validation: list[_Region] = []
        for index, array in enumerate(self.arrays):
            n_samples, spatial = array.shape[0], array.shape[2:]
            full = (0,) * len(spatial)
            axis = int(np.argmax([s / p for s, p in zip(spatial, self.patch_shape, strict=True)]))
            held = max(self.patch_shape[axis], round(fraction * spatial[axis]))
            if fraction <= 0:
                train += [_Region(index, n, full, spatial) for n in range(n_samples)]
            elif spatial[axis] >= self.patch_shape[axis] + held:
                cut = spatial[axis] - held
                for n in range(n_samples):
                    stop = list(spatial)
                    stop[axis] = cut
                    start = [0] * len(spatial)
                    start[axis] = cut
                    train.append(_Region(index, n, full, tuple(stop)))
                    validation.append(_Region(index, n, tuple(start), spatial))
            elif n_samples > 1:
                n_val = max(1, round(fraction * n_samples))
                train += [_Region(index, n, full, spatial) for n in range(n_samples - n_val)]
                validation += [
                    _Region(index, n, full, spatial) for n in range(n_samples - n_val, n_samples)
                ]
            else:
                train.append(_Region(index, 0, full, spatial))
        return train, validation

    def _crop(self, region: _Region, corner: Sequence[int], source: list[np.ndarray]):
        slices = tuple(slice(c, c + p) for c, p in zip(corner, self.patch_shape, strict=True))
        return source[region.array_index][(region.sample, slice(None), *slices)]

    def _random_corner(self, region: _Region, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(
            int(rng.integers(a, b - p + 1))
            for a, b, p in zip(region.start, region.stop, self.patch_shape, strict=True)
        )

    def _background_threshold(self, quantile: float) -> float:
        if quantile <= 0:
            return -np.inf
        rng = np.random.default_rng(12345)
        stds = []
        for _ in range(256):
            region = self.train_regions[rng.choice(len(self.train_regions), p=self._weights)]
            stds.append(self._crop(region, self._random_corner(region, rng), self.arrays).std())
        return float(np.quantile(stds, quantile))

    def _validation_patches(self, limit: int, seed: int) -> np.ndarray | tuple:
        rng = np.random.default_rng(seed + 1)
        inputs, targets = [], []
        for k in range(limit):
            region = self.validation_regions[k % len(self.validation_regions)]
            corner = self._random_corner(region, rng)
            inputs.append(self._crop(region, corner, self._validation_source))
            if self._validation_targets is not None:
                targets.append(self._crop(region, corner, self._validation_targets))
        stacked = np.ascontiguousarray(np.stack(inputs), np.float32)
        if self._validation_targets is None:
            return stacked
        return stacked, np.ascontiguousarray(np.stack(targets), np.float32)

    def sample(self, batch_size: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """A random batch ``(B, C, *patch_shape)`` (and its targets in supervised mode)."""
        inputs, targets = [], []
        while len(inputs) < batch_size:
            region = self.train_regions[self.rng.choice(len(self.train_regions), p=self._weights)]
            corner = self._random_corner(region, self.rng)
            patch = self._crop(region, corner, self.arrays)
            if patch.std() < self.background_threshold:
                continue
            target = self._crop(region, corner, self.targets) if self.targets is not None else None
            if self.augment:
                patch, target = self._augment(patch, target)
            inputs.append(patch)
            targets.append(target)
        batch = np.ascontiguousarray(np.stack(inputs), np.float32)
        if self.targets is None:
            return batch
        return batch, np.ascontiguousarray(np.stack(targets), np.float32)

    def _augment(self, patch: np.ndarray, target: np.ndarray | None):
        flips = [axis for axis in (-1, -2) if self.rng.random() < 0.5]
        turns = int(self.rng.integers(4)) if patch.shape[-1] == patch.shape[-2] else 0

        def transform(x: np.ndarray) -> np.ndarray:
            if flips:
                x = np.flip(x, axis=flips)
            return np.rot90(x, turns, axes=(-2, -1)) if turns else x

        return transform(patch), (transform(target) if target is not None else None)
