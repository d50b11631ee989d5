"""Small seeded synthetic images with known clean versions, for quality tests."""

import numpy as np


def synthetic_2d(shape=(96, 96), sigma=0.15, seed=0):
    """Smooth blobs and edges in [0, 1] with Gaussian noise; returns (noisy, clean)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = np.zeros(shape)
    for _ in range(12):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        radius = rng.uniform(4, 14)
        clean += rng.uniform(0.3, 0.8) * ((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2)
    clean = ndimage.gaussian_filter(np.clip(clean, 0, 1), 1.0)
    noisy = clean + rng.normal(0, sigma, shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def x_correlated_2d(shape=(128, 128), sigma=0.15, seed=0):
    """``synthetic_2d``'s clean image with noise shared by X-neighbours (``[1, 2, 1]``
    smoothing: neighbour correlation 2/3 along X, 0 along Y and across the diagonal);
    returns (noisy, clean)."""
    from scipy import ndimage

    _, clean = synthetic_2d(shape=shape, seed=seed)
    white = np.random.default_rng(seed + 100).standard_normal(clean.shape)
    smeared = ndimage.correlate1d(white, [1.0, 2.0, 1.0], axis=-1)
    return (clean + sigma * smeared / smeared.std()).astype(np.float32), clean


def synthetic_3d(shape=(16, 48, 48), sigma=0.15, seed=0):
    """Smooth 3D blobs with Gaussian noise; returns (noisy, clean)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    clean = np.zeros(shape)
    for _ in range(8):
        c = [rng.uniform(0, s) for s in shape]
        radius = rng.uniform(3, 8)
        clean += 0.6 * ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < radius**2)
    clean = ndimage.gaussian_filter(np.clip(clean, 0, 1), 1.0)
    noisy = clean + rng.normal(0, sigma, shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def psnr(clean, estimate, data_range=1.0):
    mse = float(np.mean((np.asarray(clean, np.float64) - estimate) ** 2))
    return 10 * np.log10(data_range**2 / mse)
