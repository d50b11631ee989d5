"""Exploration for issue 13 item 2: a joint default model, then a short fine-tune per image.

Usage: ``python benchmarks/explore_finetune.py VARIANT JOINT_STEPS all '{"ft_steps": 655,
"ft_lr": 1e-3, "ft_schedule": "cosine"}'``. The joint model (Neighbor2Neighbor, bf16, one
thread, seed 0, all 12 noisy Set12 images) is cached in ``_work/joint_<steps>.safetensors``.
Rows go to ``benchmarks/_work/exp_ft.jsonl``.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _baselines as base
from _explore import WORK, explore_args, noisy_set12, save_row

from selfdenoise import Denoiser

variant, joint_steps, names, settings = explore_args()
if names == ["all"]:
    names = [f"{k:02d}" for k in range(1, 13)]
ft_steps = settings.pop("ft_steps", 0)
ft_lr = settings.pop("ft_lr", 1e-3)
ft_schedule = settings.pop("ft_schedule", "cosine")
data = {
    name: (clean, noisy) for name, clean, noisy in noisy_set12([f"{k:02d}" for k in range(1, 13)])
}
cache = WORK / f"joint_{joint_steps}.safetensors"
if cache.exists():
    joint_s = None
else:
    t0 = time.perf_counter()
    model = Denoiser(
        "neighbor2neighbor", "YX", device="cpu", steps=joint_steps, amp="bf16", seed=0, **settings
    )
    model.fit([noisy for _, noisy in data.values()])
    joint_s = time.perf_counter() - t0
    model.save(cache)
    print(f"joint {joint_steps} steps in {joint_s:.0f} s", flush=True)

for name in names:
    clean, noisy = data[name]
    model = Denoiser.load(cache, device="cpu")
    row = {"variant": variant, "image": name, "joint_steps": joint_steps, "ft_steps": ft_steps}
    if ft_steps:
        model.continue_training(steps=ft_steps, learning_rate=ft_lr, schedule=ft_schedule)
        t0 = time.perf_counter()
        model.fit(noisy)
        row["ft_s"] = time.perf_counter() - t0
    row["psnr"] = base.scores(clean, model.predict(noisy, collaborative_filter=False))[0]
    row["psnr_tta"] = base.scores(
        clean, model.predict(noisy, tta=True, collaborative_filter=False)
    )[0]
    save_row(row, "exp_ft.jsonl")
