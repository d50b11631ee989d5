"""Exploration for issue 13 item 2: joint default models of several seeds, averaged.

Usage: ``python benchmarks/explore_ensemble.py VARIANT STEPS SEED`` trains (or loads) one
joint model (Neighbor2Neighbor, bf16, one thread, all 12 noisy Set12 images) into
``_work/joint_<steps>_s<seed>.safetensors`` and saves its predictions (plain and TTA) to
``_work/pred_<steps>_s<seed>.npz``; ``... VARIANT STEPS 0,1 score`` scores each seed and the
mean of their predictions. Rows go to ``benchmarks/_work/exp_ens.jsonl``.
``... seeds STEPS 1,2 '{"quality_rows": true}'`` appends to ``results/quality.jsonl`` the
per-image mean over training seed 0 (the quality section's own joint rows at STEPS) and the
given seeds, PSNR and SSIM, plain and TTA, as "neighbor2neighbor [bf16] (joint, mean of N
training seeds)": the quality table's joint row is one seed, and the seeds differ by 0.08 dB.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _baselines as base
from _explore import WORK, explore_args, noisy_set12, save_row

from selfdenoise import Denoiser

variant, steps, seeds, settings = explore_args()
names = [f"{k:02d}" for k in range(1, 13)]
data = {name: (clean, noisy) for name, clean, noisy in noisy_set12(names)}
if settings.get("score"):
    preds = [np.load(WORK / f"pred_{steps}_s{seed}.npz") for seed in seeds]
    for name in names:
        clean = data[name][0]
        row = {"variant": variant, "image": name, "steps": steps, "seeds": ",".join(seeds)}
        for key in ("plain", "tta"):
            for seed, pred in zip(seeds, preds, strict=True):
                row[f"s{seed}_{key}"] = base.scores(clean, pred[f"{name}_{key}"])[0]
            mean = np.mean([pred[f"{name}_{key}"] for pred in preds], axis=0)
            row[f"ens_{key}"] = base.scores(clean, mean)[0]
        save_row(row, "exp_ens.jsonl")
    raise SystemExit
if settings.get("quality_rows"):
    import json

    results = Path(__file__).resolve().parent / "results" / "quality.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    preds = [np.load(WORK / f"pred_{steps}_s{seed}.npz") for seed in seeds]
    label = f"neighbor2neighbor [bf16] (joint, mean of {len(seeds) + 1} training seeds)"
    with results.open("a") as out:
        for key, suffix in (("plain", ""), ("tta", " +TTA")):
            method = f"neighbor2neighbor [bf16] (joint){suffix}"
            seed0 = {r["image"]: r for r in rows if r["method"] == method and r["steps"] == steps}
            for name in names:
                clean, first = data[name][0], seed0[name]
                outputs = [pred[f"{name}_{key}"] for pred in preds]
                scored = [base.scores(clean, output) for output in outputs]
                psnr = [first["psnr"], *(value for value, _ in scored)]
                ssim = [first["ssim"], *(value for _, value in scored)]
                row = {**first, "method": label + suffix, "recipe": first["recipe"] + ", seeds"}
                row.update(psnr=float(np.mean(psnr)), ssim=float(np.mean(ssim)))
                row["extra"] = {**first["extra"], "training_seeds": [0, *map(int, seeds)]}
                row["extra"].update(psnr_per_seed=psnr)
                out.write(json.dumps(row) + "\n")
    raise SystemExit
seed = int(seeds[0])
cache = WORK / f"joint_{steps}_s{seed}.safetensors"
if cache.exists():
    model = Denoiser.load(cache, device="cpu")
else:
    started = time.perf_counter()
    model = Denoiser(
        "neighbor2neighbor", "YX", device="cpu", steps=steps, amp="bf16", seed=seed, **settings
    )
    model.fit([noisy for _, noisy in data.values()])
    model.save(cache)
    print(f"joint {steps} steps, seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
outputs = {}
for name in names:
    noisy = data[name][1]
    outputs[f"{name}_plain"] = model.predict(noisy, collaborative_filter=False)
    outputs[f"{name}_tta"] = model.predict(noisy, tta=True, collaborative_filter=False)
np.savez(WORK / f"pred_{steps}_s{seed}.npz", **outputs)
print("saved predictions", flush=True)
