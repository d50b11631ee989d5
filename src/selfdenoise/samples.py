"""Built-in noisy/clean image pairs for demos, tests and the napari sample menu.

Nothing is downloaded: the 2D sample is scikit-image's bundled ``camera`` image, the 3D sample
is synthetic (nuclei-like blobs and filaments). Both get Poisson-Gaussian noise (shot noise of
``photons`` photons at full intensity plus Gaussian read noise) from a seeded generator, so the
same seed always gives the same arrays. Clean images lie in ``[0, 1]``; noisy ones are centred
on them (and may go slightly below 0 or above 1).
"""

from __future__ import annotations

import numpy as np

from ._errors import SelfDenoiseError

__all__ = ["add_poisson_gaussian_noise", "noisy_2d", "noisy_3d", "synthetic_cells_3d"]


def add_poisson_gaussian_noise(
    clean: np.ndarray, photons: float, read_noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Add shot noise and Gaussian read noise to an image in ``[0, 1]``.

    Parameters
    ----------
    clean : ndarray
        Noise-free intensities, expected in ``[0, 1]``.
    photons : float
        Expected photon count at intensity 1; fewer photons means more shot noise.
    read_noise : float
        Standard deviation of the additive Gaussian noise, in intensity units.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray
        Noisy float32 image of the same shape.
    """
    if photons <= 0 or read_noise < 0:
        raise SelfDenoiseError("photons must be > 0 and read_noise >= 0 for sample noise.")
    counts = rng.poisson(np.clip(clean, 0.0, None) * photons)
    noisy = counts / photons + rng.normal(0.0, read_noise, size=clean.shape)
    return noisy.astype(np.float32)


def noisy_2d(
    seed: int = 0, photons: float = 20.0, read_noise: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """The ``camera`` image (512 x 512) with Poisson-Gaussian noise.

    Parameters
    ----------
    seed : int
        Seed of the noise.
    photons : float
        Photons at full intensity.
    read_noise : float
        Gaussian read-noise standard deviation.

    Returns
    -------
    noisy, clean : ndarray
        float32 arrays of shape ``(512, 512)``; ``clean`` in ``[0, 1]``.

    Examples
    --------
    >>> noisy, clean = noisy_2d(seed=0)
    >>> noisy.shape, noisy.dtype
    ((512, 512), dtype('float32'))
    """
    from skimage import data

    clean = data.camera().astype(np.float32) / 255.0
    noisy = add_poisson_gaussian_noise(clean, photons, read_noise, np.random.default_rng(seed))
    return noisy, clean


def noisy_3d(
    seed: int = 0,
    shape: tuple[int, int, int] = (32, 128, 128),
    photons: float = 15.0,
    read_noise: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic 3D stack of nuclei and filaments with Poisson-Gaussian noise.

    Parameters
    ----------
    seed : int
        Seed of both the structures and the noise.
    shape : tuple of int
        ``(Z, Y, X)`` shape; each side at least 8.
    photons : float
        Photons at full intensity.
    read_noise : float
        Gaussian read-noise standard deviation.

    Returns
    -------
    noisy, clean : ndarray
        float32 arrays of ``shape``; ``clean`` in ``[0, 1]``.
    """
    rng = np.random.default_rng(seed)
    clean = synthetic_cells_3d(shape, rng)
    noisy = add_poisson_gaussian_noise(clean, photons, read_noise, rng)
    return noisy, clean


def synthetic_cells_3d(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Noise-free 3D structures: textured ellipsoidal nuclei plus thin curved filaments.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` shape, each side at least 8.
    rng : numpy.random.Generator
        Source of randomness for positions, sizes and paths.

    Returns
    -------
    ndarray
        float32 volume in ``[0, 1]``.
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise SelfDenoiseError(f"3D sample shape must be 3 sides of at least 8; got {shape}.")
    nuclei = np.zeros(shape, np.float32)
    n_nuclei = max(3, int(np.prod(shape) / 25_000))
    for _ in range(n_nuclei):
        _add_nucleus(nuclei, rng)
    filaments = np.zeros(shape, np.float32)
    for _ in range(max(2, n_nuclei // 2)):
        _add_filament(filaments, rng)
    filaments = ndimage.gaussian_filter(filaments, 0.8)
    if filaments.max() > 0:
        filaments *= 0.7 / filaments.max()
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, shape).astype(np.float32), 2.0)
    texture *= 0.15 / max(float(texture.std()), 1e-6)
    volume = ndimage.gaussian_filter(nuclei, 1.0) * (1.0 + texture) + filaments + 0.05
    return np.clip(volume, 0.0, 1.0).astype(np.float32)


def _add_nucleus(volume: np.ndarray, rng: np.random.Generator) -> None:
    """Paint one ellipsoid of random size, position and brightness (within its bounding box)."""
    shape = np.array(volume.shape)
    radius_yx = rng.uniform(0.06, 0.11) * min(shape[1], shape[2])
    radii = radius_yx * rng.uniform(0.8, 1.25, 3)
    radii[0] = min(radii[0] * 0.8, 0.3 * shape[0])
    radii = np.maximum(radii, 2.0)
    centre = rng.uniform(0, 1, 3) * shape
    low = np.maximum(np.floor(centre - radii), 0).astype(int)
    high = np.minimum(np.ceil(centre + radii) + 1, shape).astype(int)
    if np.any(high <= low):
        return
    grids = np.ogrid[tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))]
    distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))
    brightness = rng.uniform(0.35, 0.75)
    np.maximum(volume[box], np.where(distance <= 1.0, brightness, 0.0), out=volume[box])


def _add_filament(volume: np.ndarray, rng: np.random.Generator) -> None:
    """Deposit a smooth random curve (a persistent random walk) one voxel thick."""
    shape = np.array(volume.shape, float)
    n_points = int(4 * shape.max())
    position = rng.uniform(0, 1, 3) * shape
    direction = rng.normal(0, 1, 3) * np.array([0.3, 1.0, 1.0])
    direction /= np.linalg.norm(direction) + 1e-9
    points = np.empty((n_points, 3))
    for i in range(n_points):
        direction += rng.normal(0, 0.08, 3) * np.array([0.3, 1.0, 1.0])
        direction /= np.linalg.norm(direction) + 1e-9
        position = position + 0.5 * direction
        points[i] = position
    index = np.round(points).astype(int)
    inside = np.all((index >= 0) & (index < shape.astype(int)), axis=1)
    index = index[inside]
    volume[tuple(index.T)] = 1.0
