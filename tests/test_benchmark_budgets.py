"""Benchmark helpers (issue 13): equal CPU-minute step budgets and the baseline strength sweep.

Both are pure functions of ``benchmarks/``, checked here without running a denoiser.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """Import a module of ``benchmarks/`` by name."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module


def test_cpu_minutes_become_each_methods_calibrated_steps(bench, tmp_path):
    calibration = bench("_calibration")
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"steps_per_minute": {"fast": 500.0, "slow": 231.6}}))
    rates = calibration.load_calibration(path)
    assert calibration.steps_for("fast", 1, rates) == 500
    assert calibration.steps_for("slow", 3, rates) == 695  # round(694.8)
    assert calibration.steps_for("slow", 0.001, rates) == 1
    assert calibration.cpu_minutes_label(3) == "3 min (steps eq.)"
    with pytest.raises(KeyError, match="no calibrated rate for 'other'"):
        calibration.steps_for("other", 1, rates)


def test_committed_calibration_covers_every_benchmarked_method(bench):
    rates = bench("_calibration").load_calibration()
    methods = bench("quality").SELF_SUPERVISED
    assert set(methods) <= set(rates)
    assert all(100 < rates[m] < 2000 for m in methods)


def test_strength_sweep_walks_past_a_far_optimum_and_keeps_the_start(bench):
    base = bench("_baselines")
    best = 6.3  # far above the start, like BM3D's sigma on Poisson-dominated data
    calls = []

    def denoise(factor):
        calls.append(factor)
        return factor, 0.5

    def score(output):
        return -abs(math.log(output / best)), 0.0

    found = base.sweep_strength(denoise, score, start=1.0, ratio=1.2, refine=1)
    assert abs(math.log(found.factor / best)) <= math.log(1.2) / 4 + 1e-9
    assert found.start_output == 1.0 and found.output == found.factor
    assert max(found.tried) > found.factor > min(found.tried)  # bracketed, not at an edge
    assert len(calls) == len(set(calls)) == len(found.tried)
    assert found.seconds == pytest.approx(0.5 * len(calls))


def test_real_data_reruns_deep_rows_without_baselines_one_thread_each(bench):
    args = bench("real_data").parse_args(
        ["--cases", "fmd", "--baselines", "", "--threads", "1", "--cpu-minutes", "1,3"]
    )
    assert args.baselines == () and args.threads == 1 and args.cpu_minutes == [1.0, 3.0]
    assert bench("real_data").parse_args([]).threads == 2
    assert bench("real_data").parse_args(["--amp", "bf16"]).precision == {2: "bf16", 3: "bf16"}
    assert bench("real_data").parse_args(["--amp", "off"]).precision == {2: "", 3: ""}


def test_real_data_auto_precision_follows_the_dimensions(bench, monkeypatch):
    """On a CPU with AVX-512 BF16 but no AMX, ``--amp auto`` trains the 2D cases in bf16 (their
    rows read "[bf16]" and take the bf16 rates) and the 3D cases in float32."""
    import torch

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True}, raising=False)
    assert bench("real_data").parse_args([]).precision == {2: "bf16", 3: ""}
    assert bench("quality").parse_args([]).precision == "bf16"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"amx_bf16": True}, raising=False)
    assert bench("real_data").parse_args([]).precision == {2: "bf16", 3: "bf16"}


def test_3d_budgets_use_their_own_calibrated_rate(bench, tmp_path):
    calibration = bench("_calibration")
    rates = {"fast": 500.0, "fast 3d": 40.0}
    assert calibration.rate_key("fast", 3) == "fast 3d"
    assert calibration.steps_for("fast", 3, rates, ndim=3) == 120
    assert calibration.steps_for("fast", 3, rates) == 1500
    with pytest.raises(KeyError, match="'slow 3d'"):
        calibration.steps_for("slow", 1, {"slow": 200.0}, ndim=3)


def test_joint_quality_runs_need_a_step_budget(bench):
    quality = bench("quality")
    args = quality.parse_args(["--joint", "--images", "01,02", "--budgets", "1", "--methods", "x"])
    with pytest.raises(SystemExit, match="needs --steps or --cpu-minutes"):
        quality.run_joint(args)


def test_cells3d_case_adds_seeded_poisson_gaussian_noise_to_the_capture(bench):
    real_data = bench("real_data")
    if not (real_data.SHARED_DATA / real_data.NO_REFERENCE["confocal"][0]).exists():
        pytest.skip("../shared/data/cells3d_nuclei_3d is not beside this checkout")
    noisy, reference = real_data.cells3d_pair(seed=0, quick=True)
    again, _ = real_data.cells3d_pair(seed=0, quick=True)
    assert noisy.shape == reference.shape == (16, 96, 96)
    assert noisy.dtype == reference.dtype == "float32"
    assert 0.0 <= reference.min() and reference.max() <= 1.0
    assert (noisy == again).all()
    residual = noisy - reference
    assert abs(float(residual.mean())) < 0.01  # zero-mean noise
    # Poisson-Gaussian: brighter voxels are noisier than the dark background.
    bright, dark = reference > 0.5, reference < 0.05
    if bright.sum() > 100 and dark.sum() > 100:
        assert residual[bright].std() > 2 * residual[dark].std()


def test_three_d_baselines_honour_the_names_asked_for(bench):
    real_data = bench("real_data")
    rng = np.random.default_rng(0)
    clean = np.zeros((8, 40, 40), np.float32)
    clean[2:6, 8:24, 8:24] = 0.8
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    outputs = real_data.classical_3d_candidates(noisy, clean, crop=32, names=("nl-means",))
    assert set(outputs) == {
        "NL-means 3D (estimated sigma)",
        "NL-means 3D (best h, chosen on a crop)",
    }
    tuned = outputs["NL-means 3D (best h, chosen on a crop)"]
    assert tuned[0].shape == noisy.shape and tuned[3]["tried_on_crop"]


def test_panel_labels_wrap_to_the_tile_width(bench, tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image, ImageFont

    panels = bench("_panels")
    font = ImageFont.load_default(size=13)
    title = "neighbor2neighbor (default), 3 min (steps eq.) +TTA"
    lines = panels._wrap(title, font)
    assert len(lines) > 1 and " ".join(lines) == title
    assert all(font.getlength(line) <= panels.TILE - 4 for line in lines)
    tile = panels.Tile(np.zeros((8, 8)), title, "41.77 dB / 0.994")
    path = panels.save_panel([[tile]], tmp_path / "panel.png")
    expected = panels.TILE + 4 + panels.LINE_HEIGHT * (len(lines) + 1) + 2 * panels.GAP
    assert Image.open(path).size[1] == expected


@pytest.mark.parametrize("gat", [False, True])
def test_train_predict_names_the_plain_and_tta_outputs_of_one_model(bench, gat):
    real_data = bench("real_data")
    rng = np.random.default_rng(0)
    clean = np.tile(np.linspace(0.05, 0.95, 96, dtype=np.float32), (96, 1))  # a ramp
    noisy = (clean + rng.normal(0, 0.02 + 0.1 * clean)).astype(np.float32)  # Poisson-like
    settings = {"seed": 0, "patch_shape": (32, 32), "batch_size": 2, "gat": gat}
    results = real_data.train_predict(noisy, "n2v2", ("steps", 2), "YX", True, **settings)
    assert list(results) == ["", " +TTA"]
    (plain, train_s, _), (tta, tta_train_s, _) = results[""], results[" +TTA"]
    assert train_s == tta_train_s  # one model, two predictions
    assert plain.shape == tta.shape == noisy.shape and plain.dtype == np.float64
    assert not np.allclose(plain, tta)
    only_plain = real_data.train_predict(noisy, "n2v2", ("steps", 2), "YX", **settings)
    assert list(only_plain) == [""]


def test_target_table_judges_noise2same_from_the_newest_rows(bench):
    quality = bench("quality")
    budget = "3 min (steps eq.)"

    def row(method, image, psnr, row_budget=budget):
        return {"method": method, "budget": row_budget, "image": image, "psnr": psnr}

    rows = [
        row("nl-means (estimated sigma)", "01", 28.0, "-"),
        row("nl-means (best h per image)", "01", 28.5, "-"),
        row("n2v2", "01", 27.0),
        row("n2v2 +TTA", "01", 27.5),
        row("noise2same", "01", 27.2),
        row("noise2same +TTA", "01", 28.2),
        row("noise2same", "01", 28.3),  # a rerun: the newest row counts
        row("noise2same", "02", 30.0),  # no baselines for 02: values shown, no verdict
        row("noise2same", "03", 31.0, "1 min (steps eq.)"),  # another budget
    ]
    lines = quality.target_table(rows, budget).splitlines()
    assert lines[2].split(" | ")[1:] == [
        "28.00", "28.50", "27.00", "27.50", "28.30", "28.20", "yes (yes)", "yes / no (yes / no) |"
    ]  # fmt: skip
    assert lines[3].startswith("| 02 |") and lines[3].endswith("|  |  |")
    assert lines[4].startswith("| mean (1) | 28.00 |")
    assert len(lines) == 5  # header, rule, 01, 02, mean; image 03 is at another budget
    assert quality.target_table(rows, "10 min") == ""


def test_joint_rows_get_their_own_target_table(bench):
    """Noise2Same and N2V2 trained jointly on all images are judged against each other (and
    NL-means) in a table of their own, not mixed with the single-image rows."""
    quality = bench("quality")
    joint = "3 min (steps eq.) per image, joint"
    rows = [
        {"method": "nl-means (estimated sigma)", "budget": "-", "image": "01", "psnr": 28.4},
        {"method": "nl-means (best h per image)", "budget": "-", "image": "01", "psnr": 28.6},
        {"method": "noise2same [bf16]", "budget": "3 min (steps eq.)", "image": "01", "psnr": 27.6},
    ]
    for method, psnr in (("n2v2", 27.0), ("noise2same", 28.5)):
        for suffix, gain in (("", 0.0), (" +TTA", 0.2)):
            name = f"{method} [bf16] (joint){suffix}"
            rows.append({"method": name, "budget": joint, "image": "01", "psnr": psnr + gain})
    parts = quality._target_tables(rows)
    titles = [part for part in parts if part.startswith("Noise2Same's targets")]
    assert len(titles) == 2 and "joint" in titles[1] and joint in titles[1]
    table = parts[parts.index(titles[1]) + 1].splitlines()
    assert table[2].split(" | ")[1:] == [
        "28.40", "28.60", "27.00", "27.20", "28.50", "28.70", "yes (yes)", "yes / no (yes / yes) |"
    ]  # fmt: skip


def test_network_variant_rows_get_their_own_name_and_fewer_steps(bench, tmp_path):
    quality = bench("quality")
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"steps_per_minute": {"neighbor2neighbor": 496.0}}))
    argv = ["--cpu-minutes", "3", "--calibration", str(path), "--methods", "neighbor2neighbor"]
    argv += ["--amp", "off"]
    plain = quality.parse_args(argv)
    assert quality._row_name(plain, "neighbor2neighbor") == "neighbor2neighbor"
    assert quality._settings(plain) == {"seed": 0, "amp": "off"}
    assert quality._budget(plain, "neighbor2neighbor", 3)["steps"] == 1488
    variant = quality.parse_args([*argv, "--network", '{"depth": 3}', "--step-cost", "1.28"])
    assert quality._row_name(variant, "neighbor2neighbor") == "neighbor2neighbor [depth 3]"
    assert quality._settings(variant) == {"seed": 0, "amp": "off", "network": {"depth": 3}}
    budget = quality._budget(variant, "neighbor2neighbor", 3)
    assert budget == {"steps": 1162, "label": "3 min (steps eq.)"}  # round(1488 / 1.28)
    tuned = quality.parse_args([*argv, "--settings", '{"regulariser_weight": 0}'])
    assert (
        quality._row_name(tuned, "neighbor2neighbor") == "neighbor2neighbor [regulariser_weight 0]"
    )
    assert quality._settings(tuned) == {"seed": 0, "amp": "off", "regulariser_weight": 0}
    assert quality._budget(tuned, "neighbor2neighbor", 3)["steps"] == 1488


def test_network_variant_results_name_their_overrides_in_the_recipe(bench):
    quality = bench("quality")
    plain = quality.parse_args(["--steps", "10", "--amp", "off"])
    assert quality._recipe(plain) == "default"
    assert quality._recipe(plain, joint=True) == "default, joint"
    network = '{"depth": 3, "base_channels": 32}'
    variant = quality.parse_args(
        ["--steps", "10", "--crop", "128", "--network", network, "--amp", "off"]
    )
    assert quality._recipe(variant) == "default, 128 crop, depth 3, base_channels 32"
    assert quality._recipe(variant, joint=True).endswith("base_channels 32, joint")


def test_bf16_rows_take_the_bf16_rate_and_say_so(bench, tmp_path):
    quality = bench("quality")
    path = tmp_path / "calibration.json"
    rates = {"neighbor2neighbor": 496.0, "neighbor2neighbor bf16": 968.0}
    path.write_text(json.dumps({"steps_per_minute": rates}))
    argv = ["--cpu-minutes", "3", "--calibration", str(path), "--amp", "bf16"]
    bf16 = quality.parse_args(argv)
    assert quality._row_name(bf16, "neighbor2neighbor") == "neighbor2neighbor [bf16]"
    assert quality._recipe(bf16, joint=True) == "default, bf16, joint"
    assert quality._settings(bf16) == {"seed": 0, "amp": "bf16"}
    assert quality._budget(bf16, "neighbor2neighbor", 3)["steps"] == 2904
    variant = quality.parse_args([*argv, "--network", '{"depth": 3}'])
    assert quality._row_name(variant, "noise2same") == "noise2same [depth 3, bf16]"
    with pytest.raises(KeyError, match="'noise2same bf16'"):
        quality._budget(bf16, "noise2same", 1)


def test_rate_keys_name_dimensions_and_precision(bench):
    rate_key = bench("_calibration").rate_key
    assert rate_key("n2v2") == "n2v2"
    assert rate_key("n2v2", 3) == "n2v2 3d"
    assert rate_key("n2v2", precision="bf16") == "n2v2 bf16"
    assert rate_key("n2v2", 3, "bf16") == "n2v2 3d bf16"
    assert rate_key("neighbor2neighbor", 2, "bf16", "gamma0") == "neighbor2neighbor gamma0 bf16"
    assert rate_key("neighbor2neighbor", 3, "", "gamma0") == "neighbor2neighbor gamma0 3d"


def test_neighbor2neighbor_without_its_regulariser_takes_its_own_rate(bench):
    """Where ``regulariser_weight='auto'`` reads 0 (photon noise) the default gets the rate of
    weight 0, which makes about twice the steps per CPU-minute."""
    calibration = bench("_calibration")
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.05, 1.0, 128), (128, 1))
    photon = rng.poisson(40 * ramp) / 40.0
    gaussian = ramp + rng.normal(0, 0.1, ramp.shape)
    variant = calibration.rate_variant
    assert variant("neighbor2neighbor", photon, {}) == calibration.NO_REGULARISER
    assert variant("neighbor2neighbor", gaussian, {}) == ""
    assert variant("neighbor2neighbor", gaussian, {"regulariser_weight": 0}) == "gamma0"
    assert variant("neighbor2neighbor", photon, {"regulariser_weight": 2.0}) == ""
    assert variant("neighbor2neighbor", photon, {"gat": True}) == ""  # trained stabilised
    assert variant("n2v2", photon, {}) == ""
    rates = {"neighbor2neighbor bf16": 1000.0, "neighbor2neighbor gamma0 bf16": 2000.0}
    assert calibration.steps_for("neighbor2neighbor", 3, rates, 2, "bf16", "gamma0") == 6000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--step-cost", "1.3"], "give --cpu-minutes too"),
        (["--cpu-minutes", "1", "--step-cost", "0"], "--step-cost must be positive"),
        (["--network", "{depth: 3}"], "--network is not JSON"),
        (["--network", "[3]"], "--network must be a JSON object"),
        (["--settings", "lambda_inv=1"], "--settings is not JSON"),
    ],
)
def test_quality_arguments_that_cannot_work_are_one_line_errors(bench, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        bench("quality").parse_args(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "Traceback" not in error


@pytest.mark.parametrize("script", ["quality", "cpu_budget", "real_data"])
def test_write_docs_without_results_leaves_the_page_alone(bench, monkeypatch, tmp_path, script):
    module = bench(script)
    written = []
    monkeypatch.setattr(module, "write_section", lambda *args, **kw: written.append(args))
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(SystemExit, match=re.escape(f"no results in {missing}: run the")):
        module.main(["--write-docs", "--out", str(missing)])
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(SystemExit, match=re.escape("docs/benchmarks.md was left as it is")):
        module.main(["--write-docs", "--out", str(tmp_path / "empty.jsonl")])
    assert written == []


def test_machine_line_names_the_machines_the_rows_were_measured_on(bench):
    report = bench("_report")
    assert report.machines_line(["Xeon; 2 cores", "Xeon; 2 cores"]) == "Machine: Xeon; 2 cores."
    text = report.machines_line(["Xeon; 2 cores", None, "EPYC; 2 cores", "EPYC; 2 cores"])
    assert text.splitlines()[2:] == [
        "- Xeon; 2 cores (1 rows)",
        "- not recorded (1 rows)",
        "- EPYC; 2 cores (2 rows)",
    ]


@pytest.mark.parametrize(
    ("script", "section"), [("quality", "quality"), ("real_data", "real-data")]
)
def test_committed_results_rebuild_the_tables_on_the_page(bench, monkeypatch, script, section):
    """The results files are in git: the section each one rebuilds keeps every measured row
    (a fresh checkout once had none, and a rebuild would have dropped them)."""
    module = bench(script)
    report = bench("_report")
    written = {}
    monkeypatch.setattr(module, "write_section", lambda name, text: written.update({name: text}))
    notes = BENCHMARKS / "notes" / f"{script}.md"
    module.main(["--write-docs", "--notes", str(notes)])
    page = report.PAGE.read_text()
    current = page.split(f"<!-- begin:{section} -->")[1].split(f"<!-- end:{section} -->")[0]
    rebuilt_rows = [line for line in written[section].splitlines() if line.startswith("| ")]
    page_rows = [line for line in current.splitlines() if line.startswith("| ")]
    assert len(rebuilt_rows) >= 40
    assert rebuilt_rows == page_rows


def test_real_data_without_a_calibrated_rate_is_a_one_line_error(bench, capsys):
    """3D bf16 rates are not calibrated: a bf16 run of a 3D case says what to do up front
    (it was a KeyError traceback after the classical baselines had run)."""
    real_data = bench("real_data")
    argv = ["--cases", "fmd,volume", "--methods", "noise2same", "--cpu-minutes", "1"]
    with pytest.raises(SystemExit) as exited:
        real_data.parse_args([*argv, "--amp", "bf16"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no calibrated rate for noise2same 3d bf16" in error and "--amp off" in error
    assert "noise2same bf16" not in error  # the 2D bf16 rate is calibrated
    assert real_data.parse_args([*argv, "--amp", "off"]).precision == {2: "", 3: ""}


def test_docs_only_rebuilds_the_sections_with_stored_results(bench, tmp_path, capsys):
    """``run_all.py --docs-only`` leaves a section without stored results as it is instead of
    stopping at it, and rebuilds each script's sections once."""
    run_all = bench("run_all")
    assert set(run_all.STORED) == set(run_all.DOCS)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "quality.jsonl").write_text('{"image": "01"}\n')
    (tmp_path / "results" / "cpu_budget.jsonl").write_text("")
    kept, missing = run_all.stored_sections(["quality", "cpu-budget", "inference"], tmp_path)
    assert kept == ["quality"] and missing == ["cpu-budget", "inference"]
    run_all.main(["--docs-only", "--dry-run", "--only", "quality,quality-10min,real-data"])
    printed = capsys.readouterr().out
    assert printed.count("quality.py --write-docs") == 1  # both sections share the rebuild
    assert "real_data.py --write-docs" in printed  # its results are in git
