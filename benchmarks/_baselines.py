"""Shared pieces of the quality benchmarks: data, noise, metrics, classical baselines, deep runs.

Protocol (``/work/shared/data/README.md``): clean = image / 255, noisy = clean +
N(0, (sigma/255)^2) with a fixed seed (one stream per image: ``default_rng([seed, index])``),
no clipping, PSNR and SSIM with ``data_range=1``. Classical baselines receive the noise
level estimated from the noisy image (:func:`selfdenoise.metrics.estimate_noise_sigma`, the same
estimator as scikit-image's ``estimate_sigma`` without needing PyWavelets), as a
user without the clean image would; the deep methods receive nothing.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
from _report import SHARED_DATA
from _sweep import Sweep, sweep_strength

SET12 = SHARED_DATA / "set12"
SET12_NAMES = tuple(f"{k:02d}" for k in range(1, 13))


@dataclass
class Result:
    """One denoising result: quality, cost and what produced it."""

    image: str
    method: str
    recipe: str
    budget: str
    psnr: float
    ssim: float
    train_seconds: float = 0.0
    predict_seconds: float = 0.0
    steps: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.predict_seconds


def load_set12(names: list[str] | tuple[str, ...] = SET12_NAMES, folder: Path = SET12) -> dict:
    """Clean Set12 images (float64 in [0, 1]) by name ('01'..'12')."""
    from skimage.io import imread

    if not folder.is_dir():
        raise FileNotFoundError(f"Set12 not found at {folder} (expected ../shared/data/set12).")
    images = {}
    for name in names:
        image = imread(folder / f"{name}.png")
        if image.ndim == 3:
            image = image[..., 0]
        images[name] = image.astype(np.float64) / 255.0
    return images


def add_gaussian_noise(clean: np.ndarray, sigma: float, seed: int, index: int) -> np.ndarray:
    """``clean + N(0, (sigma/255)^2)``, seeded per image, not clipped (float32)."""
    rng = np.random.default_rng([seed, index])
    return (clean + rng.normal(0.0, sigma / 255.0, clean.shape)).astype(np.float32)


def poisson_gaussian_volume(
    shape: tuple[int, int, int] = (48, 256, 256),
    seed: int = 0,
    photons: float = 30.0,
    read_sigma: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded 3D test volume: smooth blobs and tubes, Poisson-Gaussian noise.

    Returns ``(noisy, clean)`` as float32, clean in [0, 1]; the noise is Poisson with
    ``photons`` expected counts at intensity 1 (rescaled back) plus Gaussian read noise.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    clean = np.zeros(shape, np.float64)
    zz, yy, xx = np.indices(shape, dtype=np.float32)
    for _ in range(40):
        centre = rng.uniform((0, 0, 0), shape)
        radius = rng.uniform(4, 14)
        brightness = rng.uniform(0.3, 1.0)
        dist2 = ((zz - centre[0]) / 0.8) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
        clean = np.maximum(clean, brightness * (dist2 < radius**2))
    lines = np.zeros(shape, np.float64)
    for _ in range(25):
        start = rng.uniform((0, 0, 0), shape)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        for t in np.linspace(-300, 300, 2400):
            p = np.round(start + t * direction).astype(int)
            if np.all(p >= 0) and np.all(p < shape):
                lines[tuple(p)] = rng.uniform(0.5, 1.0)
    lines = ndimage.grey_dilation(lines, size=(1, 3, 3))
    clean = np.maximum(clean, lines)
    clean = ndimage.gaussian_filter(clean, (1.0, 1.5, 1.5)) * 0.9 + 0.05
    clean = np.clip(clean, 0.0, 1.0)
    counts = rng.poisson(clean * photons) / photons
    noisy = counts + rng.normal(0.0, read_sigma, shape)
    return noisy.astype(np.float32), clean.astype(np.float32)


def scores(clean: np.ndarray, estimate: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM with ``data_range=1`` (2D or 3D)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    estimate = np.asarray(estimate, np.float64)
    psnr = peak_signal_noise_ratio(clean, estimate, data_range=1.0)
    ssim = structural_similarity(clean, estimate, data_range=1.0)
    return float(psnr), float(ssim)


def estimated_sigma(noisy: np.ndarray) -> float:
    """Noise standard deviation estimated from the image (wavelet MAD, per slice in 3D)."""
    from selfdenoise.metrics import estimate_noise_sigma as estimate_sigma

    if noisy.ndim == 3:
        step = max(1, noisy.shape[0] // 8)
        return float(np.mean([estimate_sigma(s) for s in noisy[::step]]))
    return float(estimate_sigma(noisy))


NLM_FACTOR = 0.8  # h = 0.8 sigma-hat: the setting a user without a clean image gets
BM3D_FACTOR = 1.0  # sigma_psd = sigma-hat


def nl_means(
    noisy: np.ndarray, factor: float = NLM_FACTOR, sigma: float | None = None
) -> tuple[np.ndarray, float]:
    """scikit-image NL-means, fast mode, patch 5, distance 6, h = ``factor`` sigma (2D or 3D).

    ``sigma`` is the noise level (estimated from ``noisy`` when not given); returns the output
    and the seconds taken.
    """
    from skimage.restoration import denoise_nl_means

    started = time.perf_counter()
    sigma = estimated_sigma(noisy) if sigma is None else sigma
    out = denoise_nl_means(
        noisy.astype(np.float64),
        patch_size=5,
        patch_distance=6,
        h=factor * sigma,
        sigma=sigma,
        fast_mode=True,
    )
    return out, time.perf_counter() - started


def bm3d_available() -> bool:
    """True when the ``bm3d`` package is installed."""
    return importlib.util.find_spec("bm3d") is not None


def bm3d_denoise(
    noisy: np.ndarray, factor: float = BM3D_FACTOR, sigma: float | None = None
) -> tuple[np.ndarray, float]:
    """BM3D (``bm3d`` package) with ``sigma_psd = factor * sigma``; slice by slice in 3D.

    ``sigma`` is the noise level (estimated from ``noisy`` when not given); returns the output
    and the seconds taken.
    """
    import bm3d

    started = time.perf_counter()
    sigma = factor * (estimated_sigma(noisy) if sigma is None else sigma)
    if noisy.ndim == 2:
        out = bm3d.bm3d(noisy.astype(np.float64), sigma_psd=sigma)
    else:
        out = np.stack([bm3d.bm3d(s.astype(np.float64), sigma_psd=sigma) for s in noisy])
    return np.asarray(out), time.perf_counter() - started


def careamics_available() -> bool:
    """True when CAREamics can be imported in this environment."""
    return importlib.util.find_spec("careamics") is not None


CLASSICAL_SETTINGS = {  # name: (denoiser, estimated-sigma factor, knob)
    "nl-means": (nl_means, NLM_FACTOR, "h"),
    "bm3d": (bm3d_denoise, BM3D_FACTOR, "sigma"),
}


def _centre(image: np.ndarray, side: int) -> np.ndarray:
    """The centre ``side`` x ``side`` crop of a 2D image."""
    top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
    return image[top : top + side, left : left + side]


def classical_sweeps(
    noisy: np.ndarray,
    clean: np.ndarray,
    score=scores,
    ratio: float = 1.2,
    refine: int = 1,
    coarse: int = 0,
    names: tuple[str, ...] = ("nl-means", "bm3d"),
) -> dict[str, Sweep]:
    """NL-means and (if installed) BM3D, each swept by :func:`sweep_strength`.

    ``score(clean, output)`` returns ``(psnr, ssim)``. Every sweep includes the
    estimated-sigma setting (``h = 0.8 sigma-hat``, ``sigma_psd = sigma-hat``):
    ``Sweep.start_output`` is what a user without the clean image gets. With ``coarse`` (a
    side in pixels) a cheap first walk (ratio 1.44) on the centre crop of that side picks the
    start of the full-image walk: for Poisson-dominated data, whose best sigma lies 5-15x
    above sigma-hat, this saves most of the full-size calls. ``names`` selects the filters.
    """
    sigma = estimated_sigma(noisy)
    sweeps = {}
    for name, (denoiser, estimated, _) in CLASSICAL_SETTINGS.items():
        if name not in names or (name == "bm3d" and not bm3d_available()):
            continue
        start = estimated
        if coarse and min(noisy.shape) > coarse:
            crop, crop_clean = _centre(noisy, coarse), _centre(clean, coarse)
            start = sweep_strength(
                lambda f, d=denoiser, c=crop: d(c, f, sigma),
                lambda out, c=crop_clean: score(c, out),
                estimated,
                ratio=1.44,
                refine=0,
            ).factor
        sweeps[name] = sweep_strength(
            lambda f, d=denoiser: d(noisy, f, sigma),
            lambda out: score(clean, out),
            start,
            ratio,
            refine,
            keep=estimated,
        )
    return sweeps


def classical(
    clean: np.ndarray, noisy: np.ndarray, image: str, budget: str = "-", sweep: bool = False
) -> list[Result]:
    """NL-means and (if installed) BM3D results for one image.

    Without ``sweep``: one row each, the estimated-sigma setting (methods ``nl-means`` and
    ``bm3d``). With ``sweep``: two rows each, ``"<name> (estimated sigma)"`` and
    ``"<name> (best h per image)"`` / ``"(best sigma per image)"``; the chosen factor (of
    sigma-hat), the factors tried and the sweep's run time are in ``extra``.
    """
    if not sweep:
        results = []
        for name, (denoiser, factor, knob) in CLASSICAL_SETTINGS.items():
            if name == "bm3d" and not bm3d_available():
                continue
            out, seconds = denoiser(noisy, factor)
            recipe = f"{knob} = {factor:g} sigma-hat"
            results.append(Result(image, name, recipe, budget, *scores(clean, out), 0.0, seconds))
        return results
    results = []
    sigma = estimated_sigma(noisy)
    for name, found in classical_sweeps(noisy, clean).items():
        _, start, knob = CLASSICAL_SETTINGS[name]
        common = {"sigma_hat": sigma, "tried": {f"{k:g}": v[0] for k, v in found.tried.items()}}
        start_psnr, start_ssim, start_seconds = found.tried[round(start, 6)]
        best_psnr, best_ssim, best_seconds = found.tried[found.factor]
        results += [
            Result(
                image,
                f"{name} (estimated sigma)",
                f"{knob} = {start:g} sigma-hat",
                budget,
                start_psnr,
                start_ssim,
                predict_seconds=start_seconds,
                extra={"factor": start, **common},
            ),
            Result(
                image,
                f"{name} (best {knob} per image)",
                f"{knob} = f sigma-hat, f best of {len(found.tried)} against the clean image",
                budget,
                best_psnr,
                best_ssim,
                predict_seconds=best_seconds,
                extra={"factor": found.factor, "sweep_seconds": found.seconds, **common},
            ),
        ]
    return results


def run_deep(
    clean: np.ndarray,
    noisy: np.ndarray,
    image: str,
    method: str,
    recipe: str = "default",
    *,
    minutes: float | None = None,
    steps: int | None = None,
    tta: bool = False,
    axes: str | None = None,
    settings: dict | None = None,
    label: str | None = None,
    row_name: str | None = None,
    restore: bool = False,
    collaborative: bool = False,
) -> list[Result]:
    """Train a :class:`selfdenoise.Denoiser` on ``noisy`` alone, predict it and score it.

    Give ``minutes`` (wall-clock budget, the learning-rate schedule is annealed over it) or
    ``steps`` (a step budget). With ``tta`` the same trained model also predicts with 8-fold
    flip/rotation averaging, reported as a second result (method ``"<method> +TTA"``). The
    plain rows are the network's output alone (no step after it); with ``restore`` the same
    model also predicts with the detail restoration step, rows ``"<method> +restore"`` and
    ``"<method> +restore +TTA"``, and with ``collaborative`` with its default steps (its own
    detail restoration, if any, then the collaborative Wiener step), rows
    ``"<method> +collab"`` and ``"<method> +collab +TTA"`` (:data:`POST_STEPS`).
    ``label`` names the budget in the results (default ``"<minutes> min"`` / ``"<n> steps"``);
    ``row_name`` the method (default ``method``; e.g. ``"neighbor2neighbor [depth 3]"``).
    """
    from selfdenoise import Denoiser

    settings = dict(settings or {})
    settings.setdefault("device", "cpu")
    if minutes is not None:
        settings.update(max_minutes=minutes, epochs=10**6)
    if steps is not None:
        settings["steps"] = steps
    axes = axes or ("ZYX" if noisy.ndim == 3 else "YX")
    model = Denoiser(method, axes, **settings)
    started = time.perf_counter()
    model.fit(noisy)
    train_seconds = time.perf_counter() - started
    done = model.history[-1]["step"] if model.history else 0
    budget = label or (f"{minutes:g} min" if minutes is not None else f"{steps} steps")
    results = []
    for post in post_steps(restore, collaborative):
        for augment in (False, True) if tta else (False,):
            started = time.perf_counter()
            out = model.predict(noisy, tta=augment, **POST_STEPS[post])
            predict_seconds = time.perf_counter() - started
            label, variant = _prediction_names(row_name or method, recipe, augment, post)
            scored = scores(clean, out)
            results.append(
                Result(image, label, variant, budget, *scored, train_seconds, predict_seconds, done)
            )
    return results


POST_STEPS = {
    "": {"restore_detail": False, "collaborative_filter": False},
    "restore": {"restore_detail": True, "collaborative_filter": False},
    "collab": {"collaborative_filter": True},  # with the model's own detail restoration
}
"""``predict`` options of each kind of prediction: the network alone, with the detail
restoration, and with the model's default steps including the collaborative Wiener step."""


def post_steps(restore: bool = False, collaborative: bool = False) -> list[str]:
    """The kinds of prediction (keys of :data:`POST_STEPS`) a run scores."""
    return ["", *(["restore"] if restore else []), *(["collab"] if collaborative else [])]


def prediction_suffix(augment: bool, post: str = "") -> str:
    """What a prediction adds to its method's name: ``""``, ``" +TTA"``, ``" +collab +TTA"``."""
    return (f" +{post}" if post else "") + (" +TTA" if augment else "")


def _prediction_names(row: str, recipe: str, augment: bool, post: str) -> tuple[str, str]:
    """Method label and recipe of a prediction: ``"n2v2 +restore +TTA"``, ``"default+restore+tta"``."""
    label = row + prediction_suffix(augment, post)
    variant = recipe + (f"+{post}" if post else "") + ("+tta" if augment else "")
    return label, variant


def run_deep_joint(
    clean: dict[str, np.ndarray],
    noisy: dict[str, np.ndarray],
    method: str,
    *,
    steps: int,
    label: str,
    recipe: str,
    tta: bool = False,
    settings: dict | None = None,
    row_name: str | None = None,
    collaborative: bool = False,
) -> list[Result]:
    """One model trained on all of ``noisy`` at once (a stack), scored on each image.

    The step budget covers the whole set (a per-image budget times the number of images), so
    the compute matches that of one model per image. ``train_seconds`` of each result is the
    training time divided by the number of images. Methods read ``"<row_name> (joint)"``
    (``row_name`` defaults to ``method``); ``recipe`` is the results' recipe field (``+tta``
    is appended for the augmented predictions). With ``collaborative`` the same model also
    predicts with its default steps after the network, rows ``"<row_name> (joint) +collab"``
    (:data:`POST_STEPS`).
    """
    from selfdenoise import Denoiser

    settings = dict(settings or {}, steps=steps)
    settings.setdefault("device", "cpu")
    model = Denoiser(method, "YX", **settings)
    started = time.perf_counter()
    model.fit([noisy[name] for name in noisy])
    train_seconds = (time.perf_counter() - started) / len(noisy)
    done = model.history[-1]["step"] if model.history else 0
    results = []
    for name in noisy:
        for post, augment in product(post_steps(collaborative=collaborative), (False, True)):
            if augment and not tta:
                continue
            started = time.perf_counter()
            out = model.predict(noisy[name], tta=augment, **POST_STEPS[post])
            predict_seconds = time.perf_counter() - started
            row, variant = _prediction_names(f"{row_name or method} (joint)", recipe, augment, post)
            scored = scores(clean[name], out)
            results.append(
                Result(name, row, variant, label, *scored, train_seconds, predict_seconds, done)
            )
    return results


CAREAMICS_PYTHON = Path(__file__).resolve().parent / "_work" / "careamics-venv" / "bin" / "python"


def run_careamics(
    clean: np.ndarray,
    noisy: np.ndarray,
    image: str,
    minutes: float,
    python: Path = CAREAMICS_PYTHON,
) -> Result | None:
    """CAREamics N2V trained on ``noisy`` for ``minutes`` in its own environment, scored here.

    Returns ``None`` when no CAREamics environment exists at ``python``.
    """
    import json
    import subprocess
    import tempfile

    if not Path(python).exists():
        print(f"  CAREamics skipped: no environment at {python}")
        return None
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "noisy.npy", Path(folder) / "out.npy"
        np.save(source, noisy.astype(np.float32))
        script = Path(__file__).resolve().parent / "_careamics_train.py"
        done = subprocess.run(
            [str(python), str(script), str(source), str(minutes), str(target)],
            capture_output=True,
            text=True,
            check=True,
        )
        info = json.loads(done.stdout.strip().splitlines()[-1])
        out = np.load(target)
    return Result(
        image,
        "careamics n2v",
        "CAREamics 0.3.5 N2V defaults, batch 64",
        f"{minutes:g} min",
        *scores(clean, out),
        info["train_seconds"],
        info["predict_seconds"],
        info["steps"],
    )
