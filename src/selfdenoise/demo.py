"""The headless demo behind ``selfdenoise demo`` and the README's first command."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def run_demo(
    out: Path,
    minutes: float = 1.0,
    method: str = "noise2same",
    seed: int = 0,
    device: str = "auto",
) -> dict:
    """Denoise the built-in 2D sample and print what was gained.

    Makes the noisy sample (scikit-image's bundled ``camera`` with Poisson-Gaussian noise),
    trains ``method`` for ``minutes``, applies it with tiled prediction, prints PSNR, SSIM
    and edge readouts next to scikit-image's NL-means, and writes TIFFs and the model to
    ``out``.

    Returns
    -------
    dict
        The metrics table as a dictionary.
    """
    from skimage.restoration import denoise_nl_means

    from .api import Denoiser
    from .io import write_image
    from .metrics import compare, estimate_noise_sigma
    from .samples import noisy_2d

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    noisy, clean = noisy_2d(seed=seed)
    print(f"sample: {noisy.shape[0]}x{noisy.shape[1]} noisy image (Poisson-Gaussian), seed {seed}")
    model = Denoiser(method, "YX", max_minutes=minutes, epochs=10**6, seed=seed, device=device)
    print(f"training {method} for {minutes:g} min on {model.device_description} ...", flush=True)
    started = time.perf_counter()
    last = [0.0]

    def report(progress) -> None:
        if progress.validated and time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(
                f"  step {progress.step:5d}  loss {progress.loss:.4f}  "
                f"validation {progress.val_loss:.4f}  {progress.steps_per_second:.1f} steps/s",
                flush=True,
            )

    history = model.fit(noisy, callback=report)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    denoised = model.predict(noisy, tile_shape=(128, 128))
    predict_seconds = time.perf_counter() - started
    print(
        f"trained {history[-1]['step']} steps in {train_seconds:.0f}s; "
        f"tiled prediction (128x128 tiles) in {predict_seconds:.2f}s"
    )

    started = time.perf_counter()
    sigma = estimate_noise_sigma(noisy)
    nl_means = denoise_nl_means(
        noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
    ).astype(np.float32)
    nl_seconds = time.perf_counter() - started
    table = compare(
        {"noisy": noisy, f"nl-means ({nl_seconds:.1f}s)": nl_means, method: denoised},
        reference=clean,
        noisy=noisy,
        data_range=1.0,
    )
    print()
    print(table)
    for name, image in {
        "noisy": noisy,
        "clean": clean,
        "denoised": denoised,
        "nl_means": nl_means,
    }.items():
        write_image(out / f"{name}.tif", image, axes="YX")
    model_path = model.save(out / "model.safetensors")
    print(f"\nwrote {out}/noisy.tif, clean.tif, denoised.tif, nl_means.tif and {model_path.name}")
    return table.to_dict()
