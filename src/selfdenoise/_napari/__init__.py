"""napari front end: Train, Denoise and Compare dock widgets and sample data.

The widgets are contributed through ``napari.yaml`` (npe2). Importing this package, or any
widget module, does not import torch: the engine pieces that need it are imported inside the
thread workers.
"""

__all__ = ["CompareWidget", "PredictWidget", "TrainWidget"]


def __getattr__(name: str):
    if name == "TrainWidget":
        from ._train_widget import TrainWidget

        return TrainWidget
    if name == "PredictWidget":
        from ._predict_widget import PredictWidget

        return PredictWidget
    if name == "CompareWidget":
        from ._compare_widget import CompareWidget

        return CompareWidget
    raise AttributeError(f"module 'selfdenoise._napari' has no attribute {name!r}")
