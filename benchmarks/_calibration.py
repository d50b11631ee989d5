"""Equal CPU-minute budgets on a shared machine: quiet-machine steps per minute per method.

A wall-clock budget means different things on a quiet machine and on one shared with other
jobs, and the deep methods differ several-fold in cost per step. The benchmarks therefore turn
"b CPU-minutes" into a step budget: ``round(b * steps_per_minute[method])``, with the rates
measured once on a quiet machine and kept in ``benchmarks/calibration.json`` (with the machine
and protocol they were measured with). ``--measure-calibration`` in ``quality.py`` re-measures
them; run it only on an otherwise idle machine.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np

CALIBRATION = Path(__file__).resolve().parent / "calibration.json"
CPU_AMP_MODES = ("auto", "off", "bf16")
"""``--amp`` of the CPU benchmarks (fp16 needs a GPU)."""
PROTOCOL = (
    "Set12 05 (256x256, sigma 25, seed 0), default recipe of each method, CPU, "
    "Denoiser(method, 'YX', max_minutes={minutes:g}, epochs=10**6, seed=0).fit(noisy), "
    "{threads} torch threads; steps trained / max_minutes (validation included)"
)


def load_calibration(path: Path = CALIBRATION) -> dict[str, float]:
    """Quiet-machine training steps per minute of each method, from a calibration file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no calibration file at {path}; run --measure-calibration")
    return {k: float(v) for k, v in json.loads(path.read_text())["steps_per_minute"].items()}


NO_REGULARISER = "gamma0"
"""Rate variant of Neighbor2Neighbor trained without its regulariser (a step skips the
full-resolution pass): what ``regulariser_weight='auto'`` picks on photon-limited data."""


def rate_key(method: str, ndim: int = 2, precision: str = "", variant: str = "") -> str:
    """The calibration entry of ``method`` (``variant``) trained in ``ndim`` dimensions at
    ``precision`` (``""``: float32; ``"bf16"``: bf16 autocast), e.g. ``"n2v2 3d"``,
    ``"noise2same bf16"``, ``"neighbor2neighbor gamma0 bf16"``."""
    dims = "" if ndim == 2 else f"{ndim}d"
    return " ".join(part for part in (method, variant, dims, precision) if part)


def rate_variant(method: str, noisy: np.ndarray, settings: dict) -> str:
    """:data:`NO_REGULARISER` when ``method`` trains without a regulariser on ``noisy`` (the
    setting 0, or ``'auto'`` read from the image as ``Denoiser.fit`` reads it), else ``""``."""
    if method != "neighbor2neighbor":
        return ""
    weight = settings.get("regulariser_weight", "auto")
    if weight == "auto" and settings.get("gat"):  # trained on stabilised data: not photon
        return ""
    if weight == "auto":
        from selfdenoise.methods.neighbor2neighbor import regulariser_weight_from_noise
        from selfdenoise.metrics import photon_noise_fraction

        planes = noisy.reshape(-1, *noisy.shape[-2:])
        middle = planes[len(planes) // 2]
        weight = regulariser_weight_from_noise(photon_noise_fraction(middle))
    return NO_REGULARISER if weight == 0 else ""


def steps_for(
    method: str,
    minutes: float,
    rates: dict[str, float],
    ndim: int = 2,
    precision: str = "",
    variant: str = "",
) -> int:
    """The step budget worth ``minutes`` CPU-minutes of ``method`` on the calibrated machine."""
    method = rate_key(method, ndim, precision, variant)
    if method not in rates:
        known = ", ".join(sorted(rates))
        raise KeyError(f"no calibrated rate for {method!r} (have: {known}); re-measure it")
    return max(1, round(minutes * rates[method]))


def cpu_precision(amp: str, spatial_dims: int) -> str:
    """What ``amp`` (as ``Denoiser(amp=...)`` takes it) trains ``spatial_dims``-D images in on
    this CPU: ``"bf16"`` when it autocasts to bf16 (``"auto"`` does on CPUs with AMX, and in 2D
    on CPUs with AVX-512 BF16), ``""`` for float32."""
    import torch

    from selfdenoise.device import autocast_dtype

    return "bf16" if autocast_dtype("cpu", amp, spatial_dims) is torch.bfloat16 else ""


def cpu_minutes_label(minutes: float) -> str:
    """How a CPU-minute budget converted to steps is named in result rows."""
    return f"{minutes:g} min (steps eq.)"


def measure_rate(
    method: str, noisy: np.ndarray, seconds: float = 30.0, amp: str = "off", **settings
) -> float:
    """Training steps per minute of ``method`` on ``noisy`` (2D or 3D) within ``seconds``, at
    the precision ``amp`` (float32 by default, as the first rates were measured), with other
    ``Denoiser`` ``settings``."""
    from selfdenoise import Denoiser

    axes = "ZYX" if noisy.ndim == 3 else "YX"
    model = Denoiser(
        method,
        axes,
        device="cpu",
        max_minutes=seconds / 60,
        epochs=10**6,
        seed=0,
        amp=amp,
        **settings,
    )
    model.fit(noisy)
    return model.steps_trained / (seconds / 60)


def calibration_image() -> np.ndarray:
    """The image the 2D rates are measured on: Set12 05 with Gaussian noise, sigma 25, seed 0."""
    import _baselines as base

    clean = base.load_set12(["05"])["05"]
    return base.add_gaussian_noise(clean, 25.0, 0, 5)


def measure_calibration(
    methods: list[str], path: Path = CALIBRATION, seconds: float = 30.0, threads: int = 2
) -> dict[str, float]:
    """Re-measure the float32 rates of ``methods`` (``seconds`` each) and rewrite ``path``.

    Rates of methods not measured are kept. Only meaningful on an otherwise idle machine.
    """
    from _report import machine_line

    noisy = calibration_image()
    old = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    rates = dict(old.get("steps_per_minute", {}))
    for method in methods:
        rates[method] = round(measure_rate(method, noisy, seconds), 1)
        print(f"{method}: {rates[method]:.1f} steps/min", flush=True)
    record = {
        **old,
        "steps_per_minute": rates,
        "machine": machine_line(),
        "protocol": PROTOCOL.format(minutes=seconds / 60, threads=threads),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
    }
    Path(path).write_text(json.dumps(record, indent=1) + "\n")
    return rates


def _paired_ratios(candidate, reference, rounds: int) -> list[float]:
    """``candidate() / reference()`` for ``rounds`` pairs, each reference window right before
    its candidate so that both see the same load."""
    ratios = []
    for _ in range(rounds):
        baseline = reference()
        ratios.append(candidate() / baseline)
    return ratios


def _write_paired(path: Path, record: dict, rates: dict, tag: str, protocol: str) -> dict:
    """Write ``rates`` of a paired measurement into the calibration ``record`` at ``path``, with
    its ``protocol_<tag>`` and ``measured_<tag>``; return the rates."""
    record["steps_per_minute"] = rates
    record[f"protocol_{tag}"] = protocol
    record[f"measured_{tag}"] = time.strftime("%Y-%m-%d %H:%M")
    Path(path).write_text(json.dumps(record, indent=1) + "\n")
    return rates


def measure_calibration_bf16(
    methods: list[str], path: Path = CALIBRATION, seconds: float = 30.0, rounds: int = 2
) -> dict[str, float]:
    """bf16 rates (``"<method> bf16"``) by their ratio to the same method in float32.

    Each bf16 window on Set12 05 is paired with a float32 window of the same method right
    before it, so both see the same load; the bf16 rate is the calibrated float32 rate times
    the mean ratio of the pairs. The float32 rates stay the unit of a CPU-minute, so bf16 rows
    are comparable with the rows measured before (the machine's speed drifts from day to day).
    """
    from _report import machine_line

    record = json.loads(Path(path).read_text())
    rates = record["steps_per_minute"]
    noisy = calibration_image()
    for method in methods:
        ratios = _paired_ratios(
            partial(measure_rate, method, noisy, seconds, amp="bf16"),
            partial(measure_rate, method, noisy, seconds, amp="off"),
            rounds,
        )
        key = rate_key(method, precision="bf16")
        rates[key] = round(rates[method] * float(np.mean(ratios)), 1)
        print(f"{key}: {rates[key]:.1f} steps/min (bf16 / float32: {ratios})", flush=True)
    record["machine_bf16"] = machine_line()
    protocol = (
        f"'<method> bf16': Set12 05, default recipe with amp='bf16', {seconds:g} s windows, each "
        f"paired with a float32 window of the same method; rate = calibrated float32 rate x "
        f"mean bf16/float32 ratio over {rounds} pairs"
    )
    return _write_paired(path, record, rates, "bf16", protocol)


def measure_calibration_no_regulariser(
    precisions: tuple[str, ...] = ("", "bf16"),
    path: Path = CALIBRATION,
    seconds: float = 30.0,
    rounds: int = 2,
    volume: np.ndarray | None = None,
) -> dict[str, float]:
    """Neighbor2Neighbor's rates without its regulariser (``"neighbor2neighbor gamma0 ..."``).

    Each window with ``regulariser_weight=0`` on Set12 05 (or on ``volume``: the 3D rate) is
    paired with a window of the paper's weight 2 at the same precision right before it; the
    rate is the calibrated rate of the method there times the mean ratio of the pairs.
    """
    record = json.loads(Path(path).read_text())
    rates = record["steps_per_minute"]
    image, ndim = (calibration_image(), 2) if volume is None else (volume, 3)
    method = "neighbor2neighbor"
    for precision in precisions:
        amp = "bf16" if precision == "bf16" else "off"
        ratios = _paired_ratios(
            partial(measure_rate, method, image, seconds, amp=amp, regulariser_weight=0.0),
            partial(measure_rate, method, image, seconds, amp=amp, regulariser_weight=2.0),
            rounds,
        )
        key = rate_key(method, ndim, precision, NO_REGULARISER)
        rates[key] = round(rates[rate_key(method, ndim, precision)] * float(np.mean(ratios)), 1)
        print(f"{key}: {rates[key]:.1f} steps/min (ratio to weight 2: {ratios})", flush=True)
    where = "Set12 05" if volume is None else f"{volume.shape} volume"
    protocol = (
        f"'neighbor2neighbor gamma0 [3d] [bf16]': {where}, regulariser_weight=0, {seconds:g} s "
        f"windows, each paired with a window of regulariser_weight=2 at the same precision; "
        f"rate = calibrated rate x mean ratio over {rounds} pairs"
    )
    tag = NO_REGULARISER if volume is None else f"{NO_REGULARISER}_3d"
    return _write_paired(path, record, rates, tag, protocol)


def measure_calibration_3d(
    methods: list[str],
    volume: np.ndarray,
    path: Path = CALIBRATION,
    seconds: float = 30.0,
    rounds: int = 2,
) -> dict[str, float]:
    """3D rates (``"<method> 3d"``) by their ratio to the calibrated 2D default method.

    Each 3D window on ``volume`` is paired with a window of the 2D default method on Set12 05
    right before it, so both see the same load; the 3D rate is the quiet 2D rate of the default
    method times the mean ratio of the pairs. Works on a shared machine, unlike
    :func:`measure_calibration`, as long as the load is steady over a pair.
    """
    from selfdenoise.config import DEFAULT_METHOD

    record = json.loads(Path(path).read_text())
    rates = record["steps_per_minute"]
    noisy = calibration_image()
    for method in methods:
        ratios = _paired_ratios(
            partial(measure_rate, method, volume, seconds),
            partial(measure_rate, DEFAULT_METHOD, noisy, seconds),
            rounds,
        )
        rates[rate_key(method, 3)] = round(rates[DEFAULT_METHOD] * float(np.mean(ratios)), 1)
        print(f"{method} 3d: {rates[rate_key(method, 3)]:.1f} steps/min", flush=True)
    protocol = (
        f"'<method> 3d': {volume.shape} volume, default 3D recipe, {seconds:g} s windows, each "
        f"paired with a 2D {DEFAULT_METHOD} window on Set12 05; rate = quiet 2D rate of "
        f"{DEFAULT_METHOD} x mean 3D/2D ratio over {rounds} pairs"
    )
    return _write_paired(path, record, rates, "3d", protocol)
