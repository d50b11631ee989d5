"""Exploration for issue 13 item 2: joint default models of several seeds, averaged.

Usage: ``python benchmarks/explore_ensemble.py VARIANT STEPS SEED`` trains (or loads) one
joint model (Neighbor2Neighbor, bf16, one thread, all 12 noisy Set12 images) into
``_work/joint_<steps>_s<seed>.safetensors`` and saves its predictions (plain and TTA) to
``_work/pred_<steps>_s<seed>.npz``; ``... VARIANT STEPS 0,1 score`` scores each seed and the
mean of their predictions. Rows go to ``benchmarks/_work/exp_ens.jsonl``.
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
    outputs[f"{name}_plain"] = model.predict(noisy)
    outputs[f"{name}_tta"] = model.predict(noisy, tta=True)
np.savez(WORK / f"pred_{steps}_s{seed}.npz", **outputs)
print("saved predictions", flush=True)
