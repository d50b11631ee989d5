"""The headless demo behind ``selfdenoise demo`` and the README's first command."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import DEMO_METHODS


def run_demo(
    out: Path,
    minutes: float = 1.0,
    methods: Sequence[str] = DEMO_METHODS,
    seed: int = 0,
    device: str = "auto",
    steps: int | None = None,
    all_metrics: bool = False,
) -> dict:
    """Denoise the built-in 2D sample and print what was gained.

    Makes the noisy sample (scikit-image's bundled ``camera`` with Poisson-Gaussian noise),
    trains each of ``methods`` for ``minutes`` (or ``steps``), applies it with tiled
    prediction, prints PSNR, SSIM and edge preservation next to scikit-image's NL-means with a
    line on what each means and which way is better (every readout with ``all_metrics``),
    and writes TIFFs and the models to ``out``.

    Parameters
    ----------
    out : Path
        Folder for the TIFFs and the models (created).
    minutes : float
        Training budget per method, when ``steps`` is not given.
    methods : sequence of str
        Methods to train, one after the other.
    seed : int
        Seed of the sample and the training.
    device : str
        Where to train (``'auto'``, ``'cpu'``, ``'cuda'``, ...).
    steps : int, optional
        Train each method this many steps instead of for ``minutes``.
    all_metrics : bool
        Print all readouts (and their meanings), not only the three headline numbers.

    Returns
    -------
    dict
        The full metrics table as a dictionary.
    """
    from .io import write_image
    from .metrics import compare
    from .samples import noisy_2d

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    noisy, clean = noisy_2d(seed=seed)
    print(f"sample: {noisy.shape[0]}x{noisy.shape[1]} noisy image (Poisson-Gaussian), seed {seed}")
    candidates = {"noisy": noisy}
    nl_means, nl_seconds = _nl_means(noisy)
    candidates[f"nl-means ({nl_seconds:.1f}s)"] = nl_means
    write_image(out / "nl_means.tif", nl_means, axes="YX")
    written = ["noisy.tif", "clean.tif", "nl_means.tif"]
    for method in methods:
        budget = {"steps": steps} if steps else {"max_minutes": minutes}
        denoised, seconds, model = _train_and_predict(noisy, method, budget, seed, device)
        candidates[f"{method} ({seconds:.0f}s)"] = denoised
        write_image(out / f"denoised_{method}.tif", denoised, axes="YX")
        model_path = model.save(out / f"model_{method}.safetensors")
        written += [f"denoised_{method}.tif", model_path.name]
    table = compare(candidates, reference=clean, noisy=noisy, data_range=1.0)
    write_image(out / "noisy.tif", noisy, axes="YX")
    write_image(out / "clean.tif", clean, axes="YX")
    print()
    print(_report(table, all_metrics, out))
    print(f"\nwrote {', '.join(written)} to {out}/")
    return table.to_dict()


def _report(table, all_metrics: bool, out: Path) -> str:
    """The table against the clean image and one line per row on what it means; only the
    headline numbers (PSNR, SSIM, edge preservation) unless ``all_metrics``."""
    from .metrics import HEADLINE_COLUMNS

    if all_metrics:
        return f"Every readout, against the clean image:\n{table}\n\n{table.legend()}"
    shown = table.select(HEADLINE_COLUMNS)
    rest = len(table.columns) - len(shown.columns)
    return (
        f"Against the clean image:\n{shown}\n\n{shown.legend()}\n\n"
        f"{rest} more readouts (edge scores, noise left, residual checks): add --all-metrics, "
        f"or run: selfdenoise compare {out}/denoised_*.tif --reference {out}/clean.tif "
        f"--noisy {out}/noisy.tif --explain"
    )


def _nl_means(noisy: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-image NL-means with the usual settings for a known noise level, and its time."""
    from skimage.restoration import denoise_nl_means

    from .metrics import estimate_noise_sigma

    started = time.perf_counter()
    sigma = estimate_noise_sigma(noisy)
    denoised = denoise_nl_means(
        noisy, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
    ).astype(np.float32)
    return denoised, time.perf_counter() - started


def _train_and_predict(noisy: np.ndarray, method: str, budget: dict, seed: int, device: str):
    """Train ``method`` on ``noisy`` within ``budget`` (``max_minutes`` or ``steps``); return
    the tiled prediction, the total time in seconds and the model."""
    from .api import Denoiser

    model = Denoiser(method, "YX", seed=seed, device=device, **budget)
    limit = f"{budget['steps']} steps" if "steps" in budget else f"{budget['max_minutes']:g} min"
    where = f"{model.device_description}, {model.training_precision}"
    print(f"training {method} for {limit} on {where} ...", flush=True)
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
    weight = model.regulariser_weight  # Neighbor2Neighbor's, read from the noise
    pairs = model.neighbour_pairs
    setting = (
        ""
        if weight is None
        else f" (regulariser weight {weight:g} and {pairs} pixel pairs, read from the noise)"
    )
    print(
        f"  trained {history[-1]['step']} steps in {train_seconds:.0f}s{setting}; "
        f"tiled prediction (128x128 tiles) in {predict_seconds:.2f}s",
        flush=True,
    )
    return denoised, train_seconds + predict_seconds, model
