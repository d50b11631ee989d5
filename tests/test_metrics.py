"""Tests for selfdenoise.metrics: known values, scikit-image agreement, table, errors."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from selfdenoise import SelfDenoiseError, metrics
from selfdenoise.metrics import _fidelity


def phantom(shape=(128, 128), seed=0) -> np.ndarray:
    """Overlapping disks (2D) or balls (3D) in [0, 1], lightly smoothed: many edges."""
    rng = np.random.default_rng(seed)
    grids = np.indices(shape)
    image = np.zeros(shape)
    for _ in range(25):
        centre = [rng.integers(0, n) for n in shape]
        radius = rng.integers(3, 16)
        distance2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        image[distance2 < radius**2] += rng.uniform(0.3, 1.0)
    return ndi.gaussian_filter(image / image.max(), 0.7)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    clean = phantom()
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    return clean, noisy


# --- PSNR and SSIM ---------------------------------------------------------------------


def test_psnr_equals_skimage_float_and_uint8(images):
    clean, noisy = images
    expected = peak_signal_noise_ratio(clean, noisy, data_range=1.0)
    assert metrics.psnr(clean, noisy, data_range=1.0) == pytest.approx(expected, rel=1e-12)
    clean8 = (clean * 255).round().astype(np.uint8)
    noisy8 = (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)
    expected8 = peak_signal_noise_ratio(clean8, noisy8)  # dtype range 255
    assert metrics.psnr(clean8, noisy8) == pytest.approx(expected8, rel=1e-12)


def test_psnr_identical_is_inf_and_mask_restricts(images):
    clean, noisy = images
    assert metrics.psnr(clean, clean) == np.inf
    mask = np.zeros(clean.shape, bool)
    mask[:40] = True
    expected = 10 * np.log10(1.0 / np.mean((clean[:40] - noisy[:40]) ** 2))
    assert metrics.psnr(clean, noisy, data_range=1.0, mask=mask) == pytest.approx(expected)


def test_psnr_mixed_dtypes_compare_values_not_dtype_ranges():
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 4096, (64, 64)).astype(np.uint16)
    output = reference.astype(np.float32) + rng.normal(0, 10, reference.shape).astype(np.float32)
    as_float = metrics.psnr(
        reference.astype(np.float64), output.astype(np.float64), data_range=4095
    )
    assert metrics.psnr(reference, output, data_range=4095) == pytest.approx(as_float, rel=1e-6)


def test_psnr_scale_invariant_undoes_affine_scale(images):
    clean, noisy = images
    rescaled = 3.0 * noisy + 5.0
    plain = metrics.psnr(clean, noisy, data_range=1.0)
    assert metrics.psnr(clean, rescaled, data_range=1.0) < plain - 20
    fitted = metrics.psnr_scale_invariant(clean, rescaled, data_range=1.0)
    assert fitted >= plain - 1e-9
    assert fitted == pytest.approx(metrics.psnr_scale_invariant(clean, noisy, data_range=1.0))


def test_ssim_equals_skimage_2d(images):
    clean, noisy = images
    expected = structural_similarity(clean, noisy, data_range=1.0)
    assert metrics.ssim(clean, noisy, data_range=1.0) == pytest.approx(expected, rel=1e-12)
    clean8 = (clean * 255).astype(np.uint8)
    noisy8 = (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    assert metrics.ssim(clean8, noisy8) == pytest.approx(structural_similarity(clean8, noisy8))


def test_ssim_3d_equals_skimage_also_when_chunked(monkeypatch):
    rng = np.random.default_rng(3)
    clean = phantom((20, 24, 24), seed=3)
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    expected = structural_similarity(clean, noisy, data_range=1.0)  # 7x7x7 windows
    assert metrics.ssim(clean, noisy, data_range=1.0) == pytest.approx(expected, rel=1e-12)
    full_map = metrics.ssim_map(clean, noisy, 1.0)
    monkeypatch.setattr(_fidelity, "SSIM_CHUNK_ELEMENTS", 5 * 24 * 24)  # chunks of 8 slices
    assert metrics.ssim(clean, noisy, data_range=1.0) == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(metrics.ssim_map(clean, noisy, 1.0), full_map, atol=1e-6)


def test_ssim_map_mean_and_mask(images):
    clean, noisy = images
    ssim_map = metrics.ssim_map(clean, noisy, data_range=1.0)
    assert ssim_map.shape == clean.shape and ssim_map.dtype == np.float32
    expected = metrics.ssim(clean, noisy, data_range=1.0)
    assert ssim_map[3:-3, 3:-3].mean() == pytest.approx(expected, abs=1e-6)
    mask = np.zeros(clean.shape, bool)
    mask[10:50, 10:50] = True
    restricted = metrics.ssim(clean, noisy, data_range=1.0, mask=mask)
    assert restricted == pytest.approx(ssim_map[mask].mean(), abs=1e-6)


def test_ssim_too_thin_volume_says_what_to_do():
    volume = np.random.default_rng(0).random((3, 32, 32))
    with pytest.raises(SelfDenoiseError, match="per-slice"):
        metrics.ssim(volume, volume)


# --- data range and input checks --------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (np.array([[0, 10]], dtype=np.uint8), 255.0),
        (np.array([[0, 10]], dtype=np.uint16), 65535.0),
        (np.array([[0, 10]], dtype=np.int16), 65535.0),
        (np.array([[True, False]]), 1.0),
        (np.array([[-1.5, 2.5]], dtype=np.float32), 4.0),
    ],
)
def test_data_range_rule(reference, expected):
    assert metrics.resolve_data_range(reference) == expected
    assert metrics.resolve_data_range(reference, 7) == 7.0


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_data_range_must_be_positive(bad):
    with pytest.raises(SelfDenoiseError, match="data_range"):
        metrics.resolve_data_range(np.ones((4, 4)), bad)


def test_constant_float_reference_needs_explicit_range():
    with pytest.raises(SelfDenoiseError, match="pass data_range"):
        metrics.psnr(np.ones((8, 8)), np.zeros((8, 8)))


@pytest.mark.parametrize(
    ("reference", "image", "message"),
    [
        (np.zeros((8, 8)), np.zeros((8, 9)), "same shape"),
        (np.zeros((8, 8)), np.full((8, 8), np.nan), "NaN"),
        (np.zeros((2, 2, 8, 8)), np.zeros((2, 2, 8, 8)), "2D"),
        (np.zeros((8, 8), complex), np.zeros((8, 8)), "real-valued"),
    ],
)
def test_bad_inputs_raise_one_line_errors(reference, image, message):
    with pytest.raises(SelfDenoiseError, match=message) as caught:
        metrics.epi(reference, image)
    assert "\n" not in str(caught.value)


def test_bad_masks_raise():
    image = np.random.default_rng(0).random((8, 8))
    with pytest.raises(SelfDenoiseError, match="no pixel"):
        metrics.psnr(image, image, mask=np.zeros((8, 8), bool))
    with pytest.raises(SelfDenoiseError, match="mask has shape"):
        metrics.psnr(image, image, mask=np.ones((4, 4), bool))


# --- edge preservation ------------------------------------------------------------------


def test_epi_known_values(images):
    clean, _ = images
    rng = np.random.default_rng(4)
    assert metrics.epi(clean, clean) == pytest.approx(1.0)
    assert abs(metrics.epi(clean, rng.standard_normal(clean.shape))) < 0.05
    sharp = clean + 0.002 * rng.standard_normal(clean.shape)
    blurred = ndi.gaussian_filter(clean, 1.0)
    assert metrics.epi(clean, blurred) < metrics.epi(clean, sharp) - 0.1


def test_epi_region_only_counts_masked_pixels(images):
    clean, noisy = images
    mask = np.zeros(clean.shape, bool)
    mask[:, :64] = True
    mixed = np.where(mask, clean, noisy)
    inner = mask & np.roll(mask, 1, axis=1) & np.roll(mask, -1, axis=1)  # Laplacian support
    assert metrics.epi(clean, mixed, mask=inner) == pytest.approx(1.0)
    assert metrics.epi(clean, mixed) < 0.9


def test_gradient_correlation(images):
    clean, noisy = images
    assert metrics.gradient_correlation(clean, clean) == pytest.approx(1.0)
    everywhere = metrics.gradient_correlation(clean, noisy)
    assert -1 < everywhere < 1
    strong = metrics.gradient_correlation(clean, noisy, threshold=0.05)
    assert strong != pytest.approx(everywhere)
    assert np.isnan(metrics.gradient_correlation(clean, noisy, threshold=1e9))


def test_canny_f1_identical_and_monotonic_with_blur(images):
    clean, _ = images
    assert tuple(metrics.canny_edges_f1(clean, clean)) == (1.0, 1.0)
    scores = [metrics.canny_edges_f1(clean, ndi.gaussian_filter(clean, s)) for s in (1, 2, 3, 4)]
    f1 = [score.f1 for score in scores]
    preservation = [score.preservation for score in scores]
    assert all(a > b for a, b in itertools.pairwise(f1)), f1
    assert all(a > b for a, b in itertools.pairwise(preservation))


def test_canny_tolerance_forgives_one_pixel_shift(images):
    clean, _ = images
    shifted = ndi.shift(clean, (0, 1), order=0, mode="nearest")
    tolerant = metrics.canny_edges_f1(clean, shifted, tolerance=1)
    strict = metrics.canny_edges_f1(clean, shifted, tolerance=0)
    assert tolerant.f1 > 0.95 > 0.7 > strict.f1
    assert tolerant.preservation > 0.95 > 0.7 > strict.preservation


def test_canny_3d_is_per_slice_mean_with_shared_thresholds():
    volume = np.stack([phantom((64, 64), seed=s) for s in range(4)])
    blurred = ndi.gaussian_filter(volume, (0, 2, 2))
    thresholds = metrics.canny_thresholds(volume)
    edges = metrics.canny_edges(volume, thresholds=thresholds)
    assert edges.shape == volume.shape
    np.testing.assert_array_equal(edges[2], metrics.canny_edges(volume[2], thresholds=thresholds))
    per_slice = []
    for z in range(4):
        reference_edges = metrics.canny_edges(volume[z], thresholds=thresholds)
        output_edges = metrics.canny_edges(blurred[z], thresholds=thresholds)
        kept = np.count_nonzero(reference_edges & output_edges)
        per_slice.append(kept / np.count_nonzero(reference_edges))
    scores = metrics.canny_edges_f1(volume, blurred, tolerance=0)
    assert scores.preservation == pytest.approx(np.mean(per_slice))


# --- no-reference readouts ----------------------------------------------------------------


def test_noise_sigma_recovers_known_sigma(images):
    _, noisy = images
    assert metrics.estimate_noise_sigma(noisy) == pytest.approx(0.1, rel=0.05)
    volume = np.random.default_rng(5).normal(0, 20.0, (16, 48, 48))
    assert metrics.estimate_noise_sigma(volume) == pytest.approx(20.0, rel=0.08)
    assert metrics.estimate_noise_sigma(np.zeros((16, 16))) == 0.0


def _poisson_gaussian_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Bright blobs on a dark background with Poisson-Gaussian noise: noisy, clean, true RMS."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    clean = np.full((256, 256), 0.02)
    for _ in range(30):
        cy, cx, radius = rng.uniform(0, 256), rng.uniform(0, 256), rng.uniform(6, 20)
        clean[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = rng.uniform(0.4, 1.0)
    photons, read_sigma = 20.0, 0.01
    noisy = rng.poisson(clean * photons) / photons + rng.normal(0, read_sigma, clean.shape)
    true_rms = float(np.sqrt(np.mean(clean / photons + read_sigma**2)))
    return noisy, clean, true_rms


def test_noise_rms_matches_sigma_for_white_noise_and_reads_photon_noise(images):
    _, noisy = images
    assert metrics.estimate_noise_rms(noisy) == pytest.approx(
        metrics.estimate_noise_sigma(noisy), rel=0.03
    )
    volume = np.random.default_rng(5).normal(0, 20.0, (16, 48, 48))
    assert metrics.estimate_noise_rms(volume) == pytest.approx(20.0, rel=0.08)
    photon_limited, _, true_rms = _poisson_gaussian_scene()
    assert metrics.estimate_noise_rms(photon_limited) == pytest.approx(true_rms, rel=0.15)
    # The median-based estimate reads the dark background's noise instead.
    assert metrics.estimate_noise_sigma(photon_limited) < 0.6 * true_rms
    assert metrics.estimate_noise_rms(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-12)


def test_noise_sigma_equals_skimage_estimate_sigma(images):
    pytest.importorskip("pywt")  # scikit-image needs PyWavelets for it
    from skimage.restoration import estimate_sigma

    _, noisy = images
    volume = np.random.default_rng(6).normal(0, 1, (9, 20, 31))
    for image in (noisy, noisy[:37, :50], volume):
        expected = estimate_sigma(image)
        assert metrics.estimate_noise_sigma(image) == pytest.approx(expected, rel=1e-10)


def test_method_noise_perfect_denoiser_vs_heavy_blur(images):
    clean, noisy = images
    perfect = metrics.method_noise_stats(noisy, clean)
    assert abs(perfect.residual_output_correlation) < 0.03
    assert perfect.residual_std_ratio == pytest.approx(1.0, abs=0.05)
    assert perfect.residual_autocorrelation_spread < 0.02
    blur = metrics.method_noise_stats(noisy, ndi.gaussian_filter(noisy, 4))
    assert blur.residual_output_correlation > 0.15
    assert blur.residual_autocorrelation_spread > 5 * perfect.residual_autocorrelation_spread
    assert blur.residual_std_ratio > 1.1


def test_residual_is_noisy_minus_denoised():
    noisy = np.arange(16, dtype=np.uint8).reshape(4, 4)
    denoised = np.full((4, 4), 3.5, dtype=np.float32)
    np.testing.assert_array_equal(metrics.residual(noisy, denoised), noisy - 3.5)


def test_shared_noise_correlation_tells_shared_noise_from_removed_signal():
    rng = np.random.default_rng(11)
    white = rng.standard_normal((96, 128))
    zero = np.zeros_like(white)
    assert abs(metrics.shared_noise_correlation(white, zero)) < 0.03
    # [1, 2, 1] smoothing along one axis: rho 2/3, 1/6, 0 along it, so 2/3 - 1/3; 0 across.
    for axis in (0, 1):
        smeared = ndi.correlate1d(white, [1.0, 2.0, 1.0], axis=axis)
        assert metrics.shared_noise_correlation(smeared, zero) == pytest.approx(1 / 3, abs=0.04)
    # Removed signal varies slowly: its neighbour correlation is high, and so are lags 2
    # and 3 (a residual of white noise plus a smooth field: rho(1) about 0.5, readout ~0).
    smooth = ndi.gaussian_filter(rng.standard_normal(white.shape), 3.0)
    leaked = white + smooth / smooth.std()
    rho = metrics._noise.autocorrelation(leaked, 1)
    assert rho[1, 2] > 0.4
    assert abs(metrics.shared_noise_correlation(leaked, zero)) < 0.05
    # In a volume only Y and X neighbours count: noise shared along Z reads as independent.
    volume = rng.standard_normal((24, 64, 64))
    along_z = ndi.correlate1d(volume, [1.0, 2.0, 1.0], axis=0)
    along_x = ndi.correlate1d(volume, [1.0, 2.0, 1.0], axis=2)
    empty = np.zeros_like(volume)
    assert abs(metrics.shared_noise_correlation(along_z, empty)) < 0.03
    assert metrics.shared_noise_correlation(along_x, empty) == pytest.approx(1 / 3, abs=0.04)
    # A perfect denoiser leaves nothing to correlate.
    assert np.isnan(metrics.shared_noise_correlation(white, white))


# --- compare and the table ----------------------------------------------------------------

ALL_COLUMNS = [  # the display order: PSNR, SSIM and edge preservation first
    "name",
    "psnr",
    "ssim",
    "epi",
    "psnr_scale_invariant",
    "gradient_correlation",
    "canny_f1",
    "canny_preservation",
    "noise_sigma_noisy",
    "noise_sigma_output",
    "residual_std",
    "residual_std_ratio",
    "residual_output_correlation",
    "residual_autocorrelation_spread",
    "epi_vs_noisy",
]


def test_compare_columns_and_values(images):
    clean, noisy = images
    blurred = ndi.gaussian_filter(noisy, 2)
    table = metrics.compare({"blur": blurred, "noisy": noisy}, clean, noisy)
    assert table.columns == ALL_COLUMNS
    assert [row["name"] for row in table.rows] == ["blur", "noisy"]
    assert table.column("psnr")[0] == pytest.approx(metrics.psnr(clean, blurred))
    expected_ssim = structural_similarity(clean, noisy, data_range=np.ptp(clean))
    assert table.column("ssim")[1] == pytest.approx(expected_ssim)
    assert table.column("epi_vs_noisy")[0] == pytest.approx(metrics.epi(noisy, blurred))
    assert table.column("residual_std")[0] == pytest.approx(np.std(noisy - blurred))
    assert table.settings["data_range"] == pytest.approx(np.ptp(clean))
    # the noisy input scored as a baseline: its residual readouts are n/a, not a "perfect" 0
    assert table.settings["noisy_baselines"] == ["noisy"]
    for column in metrics.BASELINE_NOT_APPLICABLE:
        assert np.isnan(table.column(column)[1]), column
        assert np.isfinite(table.column(column)[0]), column
    assert table.column("noise_sigma_noisy")[1] == table.column("noise_sigma_output")[1]


def test_table_order_legend_and_exports_agree(images):
    """Text, JSON and CSV list the readouts in the same order, PSNR, SSIM and EPI first, and
    every row has a meaning and a direction."""
    clean, noisy = images
    table = metrics.compare({"blur": ndi.gaussian_filter(noisy, 2)}, clean, noisy)
    assert table.columns[1:4] == list(metrics.HEADLINE_COLUMNS) == ["psnr", "ssim", "epi"]
    assert table.columns[1:] == metrics.display_order(table.columns)
    text_rows = [line.split()[0] for line in str(table).splitlines()[2:-1]]
    assert text_rows == table.columns[1:]
    assert json.loads(table.to_json())["columns"] == table.columns
    assert table.to_csv().splitlines()[0].split(",") == table.columns
    legend = table.legend().splitlines()
    assert [line.split()[0] for line in legend] == ["data_range", *table.columns[1:]]
    for line in legend[1:]:
        assert "Direction: " in line, line
    assert (
        set(metrics.COLUMN_MEANINGS) == set(metrics.COLUMN_DIRECTIONS) == set(metrics.DISPLAY_ORDER)
    )
    assert metrics.column_help("ssim").endswith("Direction: higher is better (at most 1).")
    headline = table.select(metrics.HEADLINE_COLUMNS)
    assert headline.columns == ["name", "psnr", "ssim", "epi"]
    assert len(headline.legend().splitlines()) == 4  # data range + the three


def test_compare_without_reference_or_noisy(images):
    clean, noisy = images
    no_reference = metrics.compare([clean, noisy], noisy=noisy)
    assert no_reference.columns == ["name", *ALL_COLUMNS[8:]]
    assert no_reference.column("name") == ["candidate 1", "candidate 2"]
    only_reference = metrics.compare(noisy, reference=clean, scale_invariant=False)
    assert only_reference.columns == ["name", *ALL_COLUMNS[1:4], *ALL_COLUMNS[5:8], ALL_COLUMNS[9]]
    with pytest.raises(SelfDenoiseError, match="no column"):
        only_reference.column("residual_std")


def test_compare_errors(images):
    clean, noisy = images
    with pytest.raises(SelfDenoiseError, match="no candidates"):
        metrics.compare({}, clean)
    with pytest.raises(SelfDenoiseError, match="candidate 'a' has shape"):
        metrics.compare({"a": clean[:64]}, clean)
    with pytest.raises(SelfDenoiseError, match="slice_index"):
        metrics.compare(noisy, clean, slice_index=0)


def test_compare_volume_modes():
    rng = np.random.default_rng(7)
    clean = phantom((8, 48, 48), seed=8)
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    output = ndi.gaussian_filter(noisy, 1)
    volume = metrics.compare({"out": output}, clean, noisy)
    assert volume.settings["mode"] == "3d"
    assert volume.column("ssim")[0] == pytest.approx(
        structural_similarity(clean, output, data_range=np.ptp(clean))
    )
    per_slice = metrics.compare({"out": output}, clean, noisy, per_slice=True)
    ssims = [
        structural_similarity(c, o, data_range=np.ptp(clean))
        for c, o in zip(clean, output, strict=True)
    ]
    assert per_slice.column("ssim")[0] == pytest.approx(np.mean(ssims))
    current = metrics.compare({"out": output}, clean, noisy, slice_index=-1)
    assert current.settings["mode"] == "slice"
    assert current.column("psnr")[0] == pytest.approx(
        metrics.psnr(clean[-1], output[-1], data_range=np.ptp(clean))
    )
    with pytest.raises(SelfDenoiseError, match="out of range"):
        metrics.compare(output, clean, slice_index=8)


def test_table_exports(images, tmp_path):
    clean, noisy = images
    table = metrics.compare({"same": clean, "noisy": noisy}, clean, noisy)
    data = json.loads(table.to_json())  # strict JSON: NaN -> null, inf -> "inf"
    assert data["columns"] == ALL_COLUMNS
    assert data["rows"][0]["psnr"] == "inf"
    assert data["rows"][1]["residual_std"] is None  # n/a for the noisy baseline, not 0
    assert data["rows"][1]["residual_output_correlation"] is None
    assert data["rows"][0]["residual_std"] == pytest.approx(np.std(noisy - clean))
    text = table.to_csv(tmp_path / "table.csv")
    assert (tmp_path / "table.csv").read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert float(rows[1]["psnr"]) == pytest.approx(table.rows[1]["psnr"])
    buffer = io.StringIO()
    table.to_csv(buffer)
    assert buffer.getvalue() == text
    printed = str(table).splitlines()  # one line per metric, one column per candidate
    assert printed[0].split() == ["name", "same", "noisy", "better"]
    assert printed[1].split() == ["data_range", *[f"{np.ptp(clean):.4f}"] * 2]
    assert printed[2].split()[:2] == ["psnr", "inf"] and printed[2].split()[-1] == "higher"
    assert printed[-3].split()[-2:] == ["n/a", "lower"]  # autocorrelation spread, noisy row
    assert printed[-1].startswith("* canny_preservation") and "canny_f1" in printed[-1]
    assert len(printed) == len(ALL_COLUMNS) + 2  # + data range row and the footnote
    assert table.to_text(transpose=False).splitlines()[0].split() == ALL_COLUMNS
    assert table.to_dict()["rows"][1]["name"] == "noisy"


def test_metrics_does_not_import_torch_or_napari():
    code = "import sys, selfdenoise.metrics; print('torch' in sys.modules, 'napari' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_compare_per_slice_with_mask_skips_empty_slices():
    rng = np.random.default_rng(9)
    clean = phantom((4, 32, 32), seed=9)
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    mask = np.zeros(clean.shape, bool)
    mask[1:3, 4:28, 4:28] = True
    table = metrics.compare(noisy, clean, noisy, mask=mask, per_slice=True)
    expected = np.mean(
        [metrics.psnr(clean[z], noisy[z], data_range=np.ptp(clean), mask=mask[z]) for z in (1, 2)]
    )
    assert table.column("psnr")[0] == pytest.approx(expected)
    with pytest.raises(SelfDenoiseError, match="slice 0"):
        metrics.compare(noisy, clean, mask=mask, slice_index=0)


@pytest.mark.parametrize("per_slice", [False, True])
def test_compare_threads_do_not_change_results(per_slice):
    rng = np.random.default_rng(10)
    clean = phantom((8, 40, 40), seed=10)
    noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    output = ndi.gaussian_filter(noisy, (0, 1, 1))
    serial = metrics.compare(output, clean, noisy, per_slice=per_slice, workers=1)
    threaded = metrics.compare(output, clean, noisy, per_slice=per_slice, workers=3)
    assert serial.to_json() == threaded.to_json()
