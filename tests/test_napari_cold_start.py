"""The cold path: a fresh napari, nothing imported, every widget docked at once (issue 11 row 11).

The test suite imports torch early for other tests; a user's napari does not. So this test
runs in a fresh interpreter: it docks all widgets from the npe2 manifest, lets two device
probes import torch in worker threads at the same time, waits until they have answered, and
fails on any error notification, thread exception or logged worker failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.viewer

SCRIPT = r"""
import json, logging, sys, threading

assert "torch" not in sys.modules, "torch was imported before napari started"
import napari
from napari.utils.notifications import notification_manager

problems = []
notification_manager.notification_ready.connect(
    lambda event: problems.append(f"{event.severity}: {event.message}")
    if str(event.severity).lower() in ("error", "warning") else None
)
threading.excepthook = lambda args: problems.append(f"thread: {args.exc_value!r}")


class Recorder(logging.Handler):
    def emit(self, record):
        problems.append(f"log: {record.getMessage()} {record.exc_info}")


logging.getLogger("selfdenoise").addHandler(Recorder(level=logging.ERROR))
viewer = napari.Viewer(show=False)
torch_before = "torch" in sys.modules
widgets = {}
for name in ("Train denoiser", "Denoise", "Compare"):
    _, widgets[name] = viewer.window.add_plugin_dock_widget("napari-selfdenoise", name)
train = widgets["Train denoiser"]
train.device.value = "cpu"  # a second probe, importing torch alongside the first
from selfdenoise._napari._feedback import wait_until

finished = wait_until(lambda: "detecting" not in train.device_label.text(), 120)
wait_until(lambda: False, 1.0)  # let late worker signals arrive
print(json.dumps({
    "torch_before_docking": torch_before,
    "finished": finished,
    "device": train.device_label.text(),
    "problems": problems,
}))
viewer.close()
"""


def test_first_dock_of_all_widgets_in_a_fresh_napari():
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"  # docked widgets need no canvas
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["torch_before_docking"]
    assert report["finished"], report
    assert "CPU" in report["device"] and "not available" not in report["device"], report
    assert report["problems"] == [], report
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
