"""Exploration for issue 13 item 1: the Noise2Same recipe against NL-means (session 20).

Not a product path: it patches the training loop to score several weight choices from ONE
run. One variant, several Set12 images (sigma 25, the quality protocol: seed 0, noise index =
the image number), one torch thread, a step budget. Each run scores:

- ``best``: the weights the engine restores (lowest masked-pixel validation loss, f(x_J));
- ``last``: the weights after the last step;
- ``n2s``: the weights with the lowest full Noise2Same loss on the same validation patches;
- ``emaD``: an exponential moving average of the weights with decay D (``--ema``),
  BatchNorm buffers (if any) copied from the live network;

plain and with 8-fold TTA. Rows go to ``benchmarks/_work/exp_n2s.jsonl``.

Usage: ``python benchmarks/explore_n2s.py VARIANT STEPS 01,07,05 ['{"lambda_inv": 1.0}']``
(keys go to ``Denoiser``; ``_lam_factor`` sets lambda_inv = factor * sigma-hat instead of
2 * sigma-hat).
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _baselines as base
from _explore import explore_args, noisy_set12, save_row

from selfdenoise import Denoiser
from selfdenoise import training as tr
from selfdenoise.masking import apply_fill, make_mask
from selfdenoise.methods.noise2same import noise2same_loss
from selfdenoise.train import to_device

variant, steps, names, settings = explore_args()
lam_factor = settings.pop("_lam_factor", None)
EMA_DECAYS = tuple(settings.pop("_ema", (0.99, 0.995, 0.998)))
state = {}


def _copy(sd):
    return {k: v.detach().clone() for k, v in sd.items()}


orig_step = tr.TrainingRun._train_step
orig_validate = tr.TrainingRun._validate_and_record


def step(self):
    p = orig_step(self)
    sd = self.network.state_dict()
    for d in EMA_DECAYS:
        ema = state.setdefault(f"ema{d}", _copy(sd))
        # warm start: the plain mean of the weights so far until 1 / (t + 1) < 1 - d
        t = self.state.run_step
        dd = min(d, t / (t + 1))
        for k, v in sd.items():
            if v.dtype.is_floating_point:
                ema[k].mul_(dd).add_(v.detach(), alpha=1 - dd)
            else:
                ema[k].copy_(v)
    return p


def n2s_val(self):
    net = self.model
    net.eval()
    g = torch.Generator().manual_seed(self.config.seed + 11)
    total, n = 0.0, 0
    patches = self.sampler.validation_patches
    with torch.no_grad():
        for s in range(0, len(patches), self.batch_size):
            b = to_device(patches[s : s + self.batch_size], self.device, self.memory_format)
            mask = make_mask(self.objective.masking, tuple(b.shape), g, device=b.device)
            o, om = net(torch.cat([b, apply_fill(b, mask, self.objective.masking, g)])).chunk(2)
            loss, _, _ = noise2same_loss(o, om, b, mask, self.objective.lambda_inv)
            total += float(loss) * len(b)
            n += len(b)
    net.train()
    return total / n


def validate(self, loss_value, lr, batches=None):
    orig_validate(self, loss_value, lr, batches)
    v = n2s_val(self)
    if "n2s_loss" not in state or v < state["n2s_loss"]:
        state["n2s_loss"], state["n2s"] = v, _copy(self.network.state_dict())
        state["n2s_step"] = self.state.step
    if self.state.best_state is not None and self.state.since_best == 0:
        state["best_step"] = self.state.step


orig_restore = tr.TrainingRun._restore_best


def restore(self):
    state["last"] = _copy(self.network.state_dict())
    orig_restore(self)


tr.TrainingRun._train_step = step
tr.TrainingRun._restore_best = restore
tr.TrainingRun._validate_and_record = validate

if lam_factor is not None:
    import selfdenoise.methods.noise2same as n2s_mod

    def _lam(sigma):
        return lam_factor * float(sigma)

    n2s_mod.lambda_inv_from_sigma = _lam

for name, clean, noisy in noisy_set12(names):
    state.clear()
    t0 = time.perf_counter()
    model = Denoiser("noise2same", "YX", device="cpu", steps=steps, **settings)
    model.fit(noisy)
    t1 = time.perf_counter()
    row = {
        "variant": variant,
        "image": name,
        "steps": steps,
        "settings": settings,
        "lam": round(model.lambda_inv, 3),
        "train_s": round(t1 - t0, 1),
        "best_step": state.get("best_step"),
        "n2s_step": state.get("n2s_step"),
    }
    net = model.network
    live = _copy(net.state_dict())
    choices = {"best": None, "last": state["last"], "n2s": state["n2s"]}
    choices.update({f"ema{d}": state[f"ema{d}"] for d in EMA_DECAYS})
    for label, weights in choices.items():
        net.load_state_dict(weights if weights is not None else live)
        row[label] = base.scores(
            clean, model.predict(noisy, restore_detail=False, collaborative_filter=False)
        )[0]
        plain_tta = model.predict(noisy, tta=True, restore_detail=False, collaborative_filter=False)
        row[label + "_tta"] = base.scores(clean, plain_tta)[0]
    save_row(row, "exp_n2s.jsonl")
