"""Screenshots of the three dock widgets at work on the sample data, for docs/images/.

Drives the widgets the way a script would (set fields, call ``run``, wait), then grabs the
whole napari window. Needs an X screen: without ``DISPLAY`` it starts a virtual one
(pyvirtualdisplay, installed with pytest-xvfb), or run it under ``xvfb-run -a``.

Usage::

    python scripts/screenshots.py [--out docs/images] [--steps-per-epoch 20]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from selfdenoise._napari._feedback import wait_until

PLUGIN = "napari-selfdenoise"
WINDOW_SIZE = (1500, 940)
PROFILE_LINE = np.array([[300.0, 170.0], [300.0, 340.0]])
"""A line from the dark coat across the grass and a tripod leg (clear edges)."""


def ensure_display():
    """Start a virtual X screen when there is none; returns it (or None)."""
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return None
    from pyvirtualdisplay import Display

    display = Display(visible=False, size=(WINDOW_SIZE[0] + 100, WINDOW_SIZE[1] + 100))
    display.start()
    return display


def settle(milliseconds: int = 400) -> None:
    """Let Qt process events (layout, painting) for a while."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + milliseconds / 1000
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def shoot(viewer, path: Path) -> None:
    """Save the whole window (canvas and docks) to ``path``."""
    settle()
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    print(f"wrote {path}")


def train(viewer, steps_per_epoch: int, out: Path):
    """Dock the Train widget and train a small Noise2Same model; shoot it mid-run too."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Train denoiser")
    widget.images.value = [viewer.layers["noisy camera"]]
    widget.batch_size.value = 8
    widget.epochs.value = 10
    widget.steps_per_epoch.value = steps_per_epoch
    widget.base_channels.value = 16
    widget.patch_size.value = "48"
    widget.run()
    wait_until(lambda: len(widget.loss_plot.val_steps) >= 4 or not widget.is_running, 600)
    shoot(viewer, out / "train_widget_running.png")
    if not widget.wait(timeout=600) or widget.denoiser is None:
        raise RuntimeError(f"training did not finish: {widget.last_error or 'timeout'}")
    return widget


def denoise(viewer):
    """Dock the Denoise widget and denoise the noisy layer."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise", tabify=True)
    if widget.image.value is not viewer.layers["noisy camera"]:
        raise RuntimeError("the Denoise widget did not preselect the noisy layer")
    widget.run()
    widget.wait(timeout=300)
    if not widget.last_layers:
        raise RuntimeError(f"denoising failed: {widget.last_error}")
    return widget, widget.last_layers[0]


def compare(viewer, denoised):
    """Dock the Compare widget (it fills its pickers from the layers' metadata), fill the table
    and plot a profile across the tripod."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare", tabify=True)
    filled = (widget.reference.value, widget.noisy.value, list(widget.candidates.value))
    expected = (viewer.layers["clean camera"], viewer.layers["noisy camera"], [denoised])
    if filled != expected:
        raise RuntimeError(f"Compare did not fill itself: {filled}")
    widget.run()
    widget.wait(timeout=300)
    line = viewer.add_shapes(
        [PROFILE_LINE], shape_type="line", name="profile line", edge_color="yellow", edge_width=3
    )
    widget.profile_shapes.value = line
    widget.plot_profile()
    return widget


def train_3d(viewer, trainer, out: Path) -> None:
    """A short 3D run (one validation): shoot the Train widget alone to show its loss plot."""
    from selfdenoise._napari._train_fields import NEW_MODEL

    viewer.open_sample(PLUGIN, "nuclei_3d")
    trainer.start_from.value = NEW_MODEL
    trainer.images.value = [viewer.layers["noisy nuclei 3D"]]
    trainer.patch_size.value = "16,32,32"
    trainer.batch_size.value = 2
    trainer.epochs.value = 1
    trainer.steps_per_epoch.value = 15
    trainer.run()
    if not trainer.wait(timeout=600) or trainer.last_error:
        raise RuntimeError(f"3D training failed: {trainer.last_error or 'timeout'}")
    dock = trainer.parentWidget()
    dock.raise_()
    trainer.scroll_area.ensureWidgetVisible(trainer.loss_caption)
    settle()
    path = out / "train_widget_3d.png"
    trainer.grab().save(str(path))
    print(f"wrote {path}")


def shared_noise(out: Path) -> None:
    """A fresh viewer: a Neighbor2Neighbor model with adjacent pixel pairs denoises a crop
    whose noise is smoothed along X; the warning notification says the collaborative step
    kept the output and names diagonal pairs."""
    import napari
    import skimage.data
    from napari.settings import get_settings
    from scipy import ndimage

    get_settings().application.gui_notification_level = "warning"
    clean = skimage.data.camera()[100:356, 150:406] / 255.0
    white = np.random.default_rng(0).standard_normal(clean.shape)
    smeared = ndimage.correlate1d(white, [1.0, 2.0, 1.0], axis=-1)
    noisy = (clean + 0.15 * smeared / smeared.std()).astype(np.float32)
    viewer = napari.Viewer(show=True, title="napari-selfdenoise")
    viewer.window._qt_window.resize(*WINDOW_SIZE)
    layer = viewer.add_image(noisy, name="camera, noise shared along X")
    from selfdenoise._napari._train_fields import NEW_MODEL

    _, trainer = viewer.window.add_plugin_dock_widget(PLUGIN, "Train denoiser")
    trainer.start_from.value = NEW_MODEL  # not the session's earlier models
    trainer.images.value = [layer]
    trainer.neighbour_pairs.value = "adjacent"
    trainer.batch_size.value, trainer.epochs.value, trainer.steps_per_epoch.value = 8, 12, 25
    trainer.base_channels.value, trainer.patch_size.value = 16, "48"
    trainer.run()
    if not trainer.wait(timeout=600) or trainer.denoiser is None:
        raise RuntimeError(f"training did not finish: {trainer.last_error or 'timeout'}")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Denoise", tabify=True)
    widget.model.value = trainer.model_name
    widget.image.value = layer
    widget.run()
    widget.wait(timeout=300)
    shoot(viewer, out / "denoise_shared_noise.png")
    del trainer, widget
    viewer.close()


def export_dialog(parent, out: Path) -> None:
    """The Export dialog (Qt's own save dialog) with its list of export formats open."""
    import tempfile

    from qtpy.QtWidgets import QApplication, QComboBox, QFileDialog

    from selfdenoise._napari._export import FILTERS

    folder = Path(tempfile.mkdtemp(prefix="models-"))
    for name in ("nuclei_n2v2.safetensors", "camera_n2n.safetensors"):
        (folder / name).write_bytes(b"")
    dialog = QFileDialog(parent, "Export model", str(folder), ";;".join(FILTERS.values()))
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.selectFile("camera_n2n.zip")
    dialog.resize(760, 420)
    dialog.move(40, 40)
    dialog.show()
    settle(600)
    types = next(c for c in dialog.findChildren(QComboBox) if c.count() == len(FILTERS))
    types.showPopup()
    settle(600)
    screen = QApplication.primaryScreen()
    geometry = dialog.frameGeometry()
    screen.grabWindow(0, geometry.x(), geometry.y(), geometry.width(), geometry.height() + 36).save(
        str(out / "export_dialog.png")
    )
    types.hidePopup()
    dialog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--steps-per-epoch", type=int, default=25)
    parser.add_argument(
        "--only-export-dialog", action="store_true", help="only the Export dialog (seconds)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    display = ensure_display()
    if args.only_export_dialog:
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance() or QApplication([])
        export_dialog(None, args.out)
        del app
        if display is not None:
            display.stop()
        return
    from napari.settings import get_settings

    settings = get_settings().application
    level = settings.gui_notification_level
    try:
        import napari

        from selfdenoise._napari._torch_import import ensure_engine

        ensure_engine()  # the widgets' own serialised import
        import torch

        torch.set_num_threads(1)  # steady on small shared machines
        settings.gui_notification_level = "error"  # no info pop-ups over the canvas
        viewer = napari.Viewer(show=True, title="napari-selfdenoise")
        viewer.window._qt_window.resize(*WINDOW_SIZE)
        viewer.open_sample(PLUGIN, "camera_2d")
        trainer = train(viewer, args.steps_per_epoch, args.out)
        shoot(viewer, args.out / "train_widget.png")
        export_dialog(trainer, args.out)

        predictor, denoised = denoise(viewer)
        viewer.layers["noisy camera"].visible = False
        shoot(viewer, args.out / "denoise_widget.png")

        viewer.layers["noisy camera"].visible = True
        canvas = getattr(viewer, "canvas", None)
        (canvas.grid if canvas is not None else viewer.grid).enabled = False
        comparer = compare(viewer, denoised)
        viewer.layers.selection.active = viewer.layers["profile line"]
        shoot(viewer, args.out / "compare_widget.png")
        comparer.scroll_area.ensureWidgetVisible(comparer.profile_plot)
        shoot(viewer, args.out / "compare_profile.png")
        train_3d(viewer, trainer, args.out)
        del trainer, predictor, comparer
        viewer.close()
        shared_noise(args.out)
    finally:
        settings.gui_notification_level = level
        if display is not None:
            display.stop()


if __name__ == "__main__":
    main()
