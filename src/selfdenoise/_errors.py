"""Errors that reach users as one line."""


class SelfDenoiseError(ValueError):
    """A problem with the user's input or settings, with what to do about it.

    The message is one line, written for the person at the keyboard: what is wrong and what
    to do. Front ends (CLI, napari widgets) show ``str(error)`` without a traceback.
    """


class TrainingCancelled(RuntimeError):
    """Raised inside a worker when a run was cancelled and no model could be kept."""
