"""The training run: global step numbering, the resumable state, the distributed facade."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from selfdenoise import Denoiser

TINY = {"base_channels": 8, "depth": 2, "batch_size": 2, "patch_shape": (16, 16), "device": "cpu"}


def _image(shape=(32, 32), seed=0):
    return np.random.default_rng(seed).normal(0.5, 0.1, shape).astype(np.float32)


def test_continued_training_numbers_steps_globally(torch_single_thread):
    model = Denoiser("n2v", steps=4, steps_per_epoch=2, **TINY)
    model.fit(_image())
    model.continue_training(steps=2)
    records = list(model.fit_iter(_image()))
    assert [r.step for r in records[:-1]] == [5, 6]
    assert [r.run_step for r in records[:-1]] == [1, 2]
    assert records[-1].total_steps == 6 and records[-1].step == 6
    assert [row["step"] for row in model.history] == [2, 4, 6]
    assert model.steps_trained == 6


def test_resume_after_continue_keeps_global_numbers(tmp_path, torch_single_thread):
    model = Denoiser("n2v", steps=2, steps_per_epoch=2, **TINY)
    model.fit(_image())
    model.continue_training(steps=4, checkpoint_every=2, checkpoint_dir=str(tmp_path))
    model.fit(_image(), callback=lambda p: p.run_step == 3 and model.stop())
    resumed = Denoiser("n2v", steps=4, steps_per_epoch=2, **TINY)
    records = list(resumed.fit_iter(_image(), resume=tmp_path / "checkpoint.pt"))
    assert [r.step for r in records[:-1]] == [5, 6]
    assert [r.run_step for r in records[:-1]] == [3, 4]
    assert [row["step"] for row in resumed.history] == [2, 4, 6]
    assert resumed.steps_trained == 6


def test_a_saved_model_keeps_its_step_count(tmp_path, torch_single_thread):
    model = Denoiser("n2v", steps=3, steps_per_epoch=2, **TINY)
    model.fit(_image())
    loaded = Denoiser.load(model.save(tmp_path / "model"))
    assert loaded.steps_trained == 3 and loaded.is_trained


def test_run_state_round_trips(torch_single_thread):
    import torch

    from selfdenoise.methods import get_objective
    from selfdenoise.nets import build_network
    from selfdenoise.prepare import prepare_training_data
    from selfdenoise.training import TrainingRun, make_sampler

    model = Denoiser("n2v", steps=4, steps_per_epoch=2, **TINY)
    data, _ = prepare_training_data(model.config, _image(), axes="YX")

    def run():
        torch.manual_seed(0)
        network = build_network(model.config.network, 2, 1)
        sampler = make_sampler(data, model.config.training, network.size_multiple)
        objective = get_objective(model.config)
        return TrainingRun(network, objective, sampler, model.config.training, torch.device("cpu"))

    first = run()
    steps = first.steps()
    for progress in steps:
        if progress.run_step == 2:
            break
    state = first.state_dict()
    steps.close()
    second = run()
    second.load_state_dict(state)
    assert second.state.step == 2 and second.state.history == first.state.history
    rest = [p for p in second.steps() if not p.done]
    assert [p.step for p in rest] == [3, 4]


def test_the_distributed_facade_does_not_import_torch():
    code = (
        "import sys\n"
        "from selfdenoise import distributed\n"
        "assert distributed.is_main_process() and not distributed.is_active()\n"
        "distributed.teardown()\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_objectives_hear_the_progress_without_a_probe():
    from selfdenoise.methods import Objective

    assert Objective().set_progress(0.5) is None


def test_the_loss_is_read_from_the_device_every_few_steps(monkeypatch, torch_single_thread):
    from selfdenoise import training

    reads = []
    original = training.LossWatch.read
    monkeypatch.setattr(training.LossWatch, "read", lambda self: reads.append(1) or original(self))
    model = Denoiser("n2v", steps=20, steps_per_epoch=10, **TINY)
    records = list(model.fit_iter(_image()))
    # steps 1, 8, 16 (the cadence), 10 and 20 (validations) and the end: not every step
    assert len(reads) == 6 < 20
    assert all(np.isfinite(r.loss) for r in records)
    assert records[0].loss == records[6].loss  # the latest value read, until the next read
    assert [row["loss"] for row in model.history] == [records[9].loss, records[19].loss]


def test_divergence_is_stopped_within_a_few_steps_with_the_start_weights(torch_single_thread):
    import pytest
    import torch

    from selfdenoise import SelfDenoiseError
    from selfdenoise.training import LOSS_READ_EVERY

    model = Denoiser("n2v", steps=200, steps_per_epoch=100, learning_rate=1e9, **TINY)
    seen = []
    with pytest.raises(SelfDenoiseError, match="diverged at step") as info:
        for progress in model.fit_iter(_image()):
            seen.append(progress.step)
    message = str(info.value)
    assert "\n" not in message and "lower the learning rate" in message
    first_bad = int(message.split("step ")[1].split()[0])
    assert seen and seen[-1] < first_bad + LOSS_READ_EVERY  # stopped within a few steps
    assert model.steps_trained == first_bad - 1
    weights = [p.detach() for p in model.network.parameters()]
    assert all(torch.isfinite(w).all() for w in weights)


def test_compile_is_ignored_on_the_cpu_with_a_one_line_note(torch_single_thread):
    import pytest

    from selfdenoise import SelfDenoiseError

    model = Denoiser("n2v", steps=2, steps_per_epoch=2, compile=True, **TINY)
    records = list(model.fit_iter(_image()))
    assert records[0].message == "torch.compile is used on CUDA only; ignored on cpu."
    assert all(not r.message for r in records[1:]) and model.steps_trained == 2
    assert Denoiser("n2v", steps=2).config.training.compile is False
    with pytest.raises(SelfDenoiseError, match="compile must be true or false"):
        Denoiser("n2v", compile="yes")


def test_a_training_step_reads_nothing_back_from_the_device(monkeypatch, torch_single_thread):
    """Our code reads no tensor value on the host in a step (a read waits for a GPU)."""
    import sys

    import torch

    reads = []
    for name in ("item", "tolist", "__float__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "selfdenoise" in caller and "tests" not in caller:
                reads.append(f"{_name} in {caller}:{sys._getframe(1).f_lineno}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    for method in ("neighbor2neighbor", "noise2same", "n2v"):
        # float32: bf16 on the CPU checks each step's gradients on the host (GradientGuard),
        # which costs nothing there, since the CPU does not run ahead; on a GPU it is off.
        model = Denoiser(method, steps=7, steps_per_epoch=100, amp="off", **TINY)
        counts = [len(reads) for _ in model.fit_iter(_image())]
        # step 1 reads the loss; steps 2..6 read nothing back (step 7 is the last: validation)
        assert counts[0] > 0 and counts[1:6] == [counts[0]] * 5, (method, reads[counts[0] :])
        reads.clear()
