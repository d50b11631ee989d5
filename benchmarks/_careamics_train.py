"""Train CAREamics' Noise2Void on one noisy 2D array for a wall-clock budget, then predict it.

Run with the CAREamics environment's python (``benchmarks/_work/careamics-venv``), by
:func:`_baselines.run_careamics`::

    python _careamics_train.py NOISY.npy MINUTES OUT.npy

CAREamics' own defaults for N2V (its U-Net, 64x64 patches, its optimiser and schedule) with
a batch of 64 patches; the budget is Lightning's ``max_time``. Prints one JSON line with the
training and prediction seconds and the number of optimiser steps.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inference import _stub_torchvision


def main(noisy_path: str, minutes: float, out_path: str) -> None:
    _stub_torchvision()
    import numpy as np
    from careamics import CAREamist
    from careamics.config import create_n2v_config

    noisy = np.load(noisy_path).astype(np.float32)
    config = create_n2v_config(
        experiment_name="bench",
        data_type="array",
        axes="YX",
        patch_size=[64, 64],
        batch_size=64,
        num_epochs=10**6,
    )
    seconds = round(minutes * 60)
    config.training_config.trainer_params["max_time"] = {"seconds": seconds}
    with tempfile.TemporaryDirectory() as work_dir:
        careamist = CAREamist(config, work_dir=work_dir, enable_progress_bar=False)
        started = time.perf_counter()
        careamist.train(train_data=noisy)
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        outputs, _names = careamist.predict(noisy, axes="YX")
        predict_seconds = time.perf_counter() - started
        steps = careamist.trainer.global_step
    np.save(out_path, np.squeeze(np.asarray(outputs[0])).astype(np.float32))
    print(
        json.dumps(
            {"train_seconds": train_seconds, "predict_seconds": predict_seconds, "steps": steps}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
