"""Diagnostics of a trained denoiser: how much it leans on each pixel's own noisy value.

Two readouts tell a blind-spot-like denoiser from an MMSE-like one without a clean image:

- :func:`self_sensitivity`: :math:`\\partial f(x)_i / \\partial x_i`, the weight an output
  pixel gives its own input pixel, averaged over sampled pixels. A blind-spot network
  (Noise2Void) has exactly 0; an identity map has 1; the linear MMSE (Wiener) filter of an
  image with Gaussian noise has a centre weight between the two, larger where the signal has
  more fine detail. Noise2Same should land in between: its invariance term exists to keep it
  well below 1, and its reconstruction term to keep it above 0.
- :func:`detail_correlation`: the Pearson correlation of the high-pass (discrete Laplacian)
  of the output with that of the input. A Wiener-like filter passes every frequency with a
  non-negative gain, so its output detail correlates positively with the input detail. A
  filter with a (near-)zero centre weight and positive neighbour weights has a negative gain
  at the highest frequencies, where the Laplacian lives, and its detail anti-correlates with
  the noisy input's (for white noise: the 4-neighbour mean has gain -1 at the Nyquist corner).
  A negative value is the signature of a denoiser that behaves like a blind spot.

Importing this module does not import torch; :func:`self_sensitivity` imports it when called.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._errors import SelfDenoiseError

__all__ = ["SelfSensitivity", "detail_correlation", "self_sensitivity"]


class SelfSensitivity(NamedTuple):
    """Result of :func:`self_sensitivity`.

    Attributes
    ----------
    mean, std : float
        Mean and standard deviation of :math:`\\partial f(x)_i / \\partial x_i` over the
        sampled pixels (and channels).
    values : numpy.ndarray
        The per-pixel derivatives, shape ``(n_pixels, C)``.
    """

    mean: float
    std: float
    values: np.ndarray


def _spatial_ndim(network: Any, array: np.ndarray, ndim: int | None) -> int:
    """Spatial dimensions: given, the network's ``ndim``, its first convolution's, or the array's."""
    if ndim is not None:
        return int(ndim)
    if hasattr(network, "ndim"):
        return int(network.ndim)
    for parameter in network.parameters():
        if parameter.dim() in (4, 5):
            return parameter.dim() - 2
    return array.ndim


def _network_and_input(
    model: Any, image: ArrayLike, ndim: int | None = None
) -> tuple[Any, np.ndarray]:
    """The torch module and the ``(C, *spatial)`` float32 input it should see."""
    array = np.asarray(image, dtype=np.float32)
    network = model
    if hasattr(model, "network") and hasattr(model, "normaliser"):
        if model.network is None or model.normaliser is None:
            raise SelfDenoiseError("the model is not trained yet; call fit() first.")
        network = model.network
        channels = getattr(network, "in_channels", 1)
        block = array[None] if array.ndim == _spatial_ndim(network, array, ndim) else array
        if block.shape[0] != channels:
            raise SelfDenoiseError(
                f"the model takes {channels} channel(s); pass a (C, *spatial) image with C = "
                f"{channels} (or a single-channel image without a C axis)."
            )
        return network, model.normaliser.forward(block)
    spatial_ndim = _spatial_ndim(network, array, ndim)
    if array.ndim not in (spatial_ndim, spatial_ndim + 1):
        raise SelfDenoiseError(
            f"expected a {spatial_ndim}D image, optionally with a leading C axis; "
            f"got shape {array.shape}."
        )
    return network, (array[None] if array.ndim == spatial_ndim else array)


def _patch_starts(
    spatial: tuple[int, ...], patch: tuple[int, ...], n_pixels: int, seed: int
) -> np.ndarray:
    """Random patch corners ``(n_pixels, ndim)`` with the patch inside the image."""
    rng = np.random.default_rng(seed)
    highs = [size - side + 1 for size, side in zip(spatial, patch, strict=True)]
    return np.stack([rng.integers(0, high, n_pixels) for high in highs], axis=1)


def _patch_shape(spatial: tuple[int, ...], patch: int, multiple: int) -> tuple[int, ...]:
    shape = tuple(min(patch, size) // multiple * multiple for size in spatial)
    if min(shape) < 1:
        raise SelfDenoiseError(
            f"image {spatial} is smaller than the network's size multiple {multiple}."
        )
    return shape


def self_sensitivity(
    model: Any,
    image: ArrayLike,
    *,
    n_pixels: int = 64,
    patch: int = 64,
    batch_size: int = 16,
    seed: int = 0,
    ndim: int | None = None,
) -> SelfSensitivity:
    """Each output pixel's derivative with respect to its own input pixel, averaged.

    For ``n_pixels`` pixels ``i`` drawn at random, a patch of side ``patch`` centred on ``i``
    is cut from the (normalised) image and the network's Jacobian diagonal
    :math:`\\partial f(x)_{c,i} / \\partial x_{c,i}` at the patch centre is computed by
    autograd, one channel at a time, in eval mode. Each patch in a batch holds one sampled
    pixel, so no other output leaks into the gradient. With a patch wider than twice the
    network's receptive-field radius the value equals the whole-image derivative; smaller
    patches see zero padding instead of image content beyond their border.

    Parameters
    ----------
    model : torch.nn.Module or Denoiser
        A network mapping ``(B, C, *spatial)`` to the same shape (the image must then be
        normalised as the network expects), or a trained :class:`selfdenoise.Denoiser`
        (its normalisation is applied; single-sample images only).
    image : array_like
        ``(*spatial)`` for one channel or ``(C, *spatial)``, 2D or 3D.
    n_pixels : int
        Number of sampled pixels.
    patch : int
        Side of the patch around each pixel (cut to the image and to the network's size
        multiple).
    batch_size : int
        Patches per forward/backward pass.
    seed : int
        Seed of the pixel sample.
    ndim : int, optional
        Spatial dimensions (2 or 3) when the network cannot tell (default: the network's
        ``ndim``, else its first convolution's, else ``image.ndim``).

    Returns
    -------
    SelfSensitivity
        Mean, standard deviation and the individual values. 0 for a blind-spot network, 1 for
        the identity.
    """
    import torch

    network, array = _network_and_input(model, image, ndim)
    if n_pixels < 1 or batch_size < 1:
        raise SelfDenoiseError("n_pixels and batch_size must be positive.")
    spatial = array.shape[1:]
    shape = _patch_shape(spatial, patch, int(getattr(network, "size_multiple", 1)))
    starts = _patch_starts(spatial, shape, n_pixels, seed)
    centre = tuple(side // 2 for side in shape)
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = network.training
    network.eval()
    values = np.zeros((n_pixels, array.shape[0]))
    try:
        for first in range(0, n_pixels, batch_size):
            corners = starts[first : first + batch_size]
            patches = np.stack(
                [
                    array[(slice(None), *(slice(s, s + n) for s, n in zip(c, shape, strict=True)))]
                    for c in corners
                ]
            )
            x = torch.from_numpy(patches).to(device).requires_grad_(True)
            output = network(x)
            at_centre = (slice(None), slice(None), *centre)
            for channel in range(array.shape[0]):
                (gradient,) = torch.autograd.grad(
                    output[at_centre][:, channel].sum(), x, retain_graph=True
                )
                diagonal = gradient[at_centre][:, channel]
                values[first : first + len(corners), channel] = diagonal.detach().cpu().numpy()
    finally:
        network.train(was_training)
    return SelfSensitivity(float(values.mean()), float(values.std()), values)


def detail_correlation(
    noisy: ArrayLike, denoised: ArrayLike, *, mask: ArrayLike | None = None
) -> float:
    """Correlation of the output's fine detail with the input's: EPI against the noisy input.

    The Pearson correlation of the discrete Laplacians (3x3 stencil in 2D, 7-point in 3D) of
    ``noisy`` and ``denoised`` (:func:`selfdenoise.metrics.epi` with the noisy image as the
    reference). It is positive for a Wiener-like denoiser (every frequency kept with a
    non-negative gain) and negative for one that ignores each pixel's own value (a blind
    spot); see the module notes.

    Parameters
    ----------
    noisy, denoised : array_like
        Input and output, same 2D or 3D shape (single channel).
    mask : array_like of bool, optional
        Region to correlate over (default: all pixels).

    Returns
    -------
    float
        In ``[-1, 1]``; NaN if either high-pass image is constant.
    """
    from .metrics import epi

    return epi(noisy, denoised, mask=mask)
