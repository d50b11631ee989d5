"""Exploration for issue 13 item 2: the default method (Neighbor2Neighbor) against BM3D.

Not a product path: it patches the training loop to keep snapshots. One variant, several Set12
images (sigma 25, the quality protocol), one torch thread, a step budget; each run scores the
restored best weights, the last weights (plain and TTA), prediction averages of snapshots
(``ens3``: at 75/87.5/100 % of the budget; ``ens5``: 50..100 %) and the uniform weight
average over the second half (``swa``). Rows go to ``benchmarks/_work/exp_dflt.jsonl``.

Usage: ``python benchmarks/explore_default.py VARIANT STEPS 09,02 ['{"_gamma": 4.0}']``
(``_gamma``/``_ramp`` patch Neighbor2Neighbor's gamma_max/ramp; other keys go to Denoiser).
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _baselines as base
from _explore import explore_args, noisy_set12, save_row

from selfdenoise import Denoiser
from selfdenoise import training as tr
from selfdenoise.methods import neighbor2neighbor as n2n

variant, steps, names, settings = explore_args()
gamma = settings.pop("_gamma", None)
if gamma is not None:
    orig_init = n2n.Neighbor2Neighbor.__init__

    def init(self, masking, regulariser_weight=2.0, ramp=1.0):
        orig_init(self, masking, gamma, settings_ramp)

    settings_ramp = settings.pop("_ramp", 1.0)
    n2n.Neighbor2Neighbor.__init__ = init

SNAP_FRACS = (0.5, 0.625, 0.75, 0.875, 1.0)
snaps, swa = {}, {"n": 0, "w": None}
orig_step = tr.TrainingRun._train_step


def step(self):
    p = orig_step(self)
    f = self.state.run_step / self.total_steps
    for s in SNAP_FRACS:
        if self.state.run_step == round(s * self.total_steps):
            snaps[s] = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
    if f > 0.5:
        sd = self.network.state_dict()
        if swa["w"] is None:
            swa["w"] = {k: v.detach().clone().float() for k, v in sd.items()}
        else:
            for k, v in sd.items():
                swa["w"][k] += v.float()
        swa["n"] += 1
    return p


tr.TrainingRun._train_step = step

for name, clean, noisy in noisy_set12(names):
    snaps.clear()
    swa.update(n=0, w=None)
    t0 = time.perf_counter()
    model = Denoiser("neighbor2neighbor", "YX", device="cpu", steps=steps, **settings)
    model.fit(noisy)
    t1 = time.perf_counter()
    row = {
        "variant": variant,
        "image": name,
        "steps": steps,
        "train_s": round(t1 - t0, 1),
        "ms_step": round(1000 * (t1 - t0) / steps, 1),
    }
    row["best"] = base.scores(clean, model.predict(noisy, collaborative_filter=False))[0]
    outs = {}
    for s, w in snaps.items():
        model.network.load_state_dict(w)
        outs[s] = (
            model.predict(noisy, collaborative_filter=False),
            model.predict(noisy, tta=True, collaborative_filter=False),
        )
    row["last"] = base.scores(clean, outs[1.0][0])[0]
    row["last_tta"] = base.scores(clean, outs[1.0][1])[0]
    for label, keys in (("ens3", (0.75, 0.875, 1.0)), ("ens5", SNAP_FRACS)):
        row[label] = base.scores(clean, np.mean([outs[k][0] for k in keys], 0))[0]
        row[label + "_tta"] = base.scores(clean, np.mean([outs[k][1] for k in keys], 0))[0]
    model.network.load_state_dict({k: v / swa["n"] for k, v in swa["w"].items()})
    row["swa"] = base.scores(clean, model.predict(noisy, collaborative_filter=False))[0]
    row["swa_tta"] = base.scores(clean, model.predict(noisy, tta=True, collaborative_filter=False))[
        0
    ]
    save_row(row, "exp_dflt.jsonl")
