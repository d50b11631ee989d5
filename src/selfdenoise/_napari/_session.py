"""Models trained or loaded in this napari session, shared by the Train and Denoise widgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psygnal import Signal

from ..registry import get_method, method_names

SELF_SUPERVISED = method_names(self_supervised=True)
"""Methods offered by the Train widget (they need nothing but the noisy data)."""


def method_label(method: str) -> str:
    """Display name of a method (``'n2v'`` -> ``'Noise2Void (N2V)'``)."""
    try:
        return get_method(method).label
    except ValueError:
        return method


@dataclass
class SessionModel:
    """A model known to this napari session.

    Attributes
    ----------
    name : str
        Unique label shown in model pickers.
    denoiser : selfdenoise.Denoiser
        The model itself.
    source : str
        Where it came from: the layer(s) it was trained on, or the file it was loaded from.
    path : str or None
        The file it was last saved to or loaded from.
    """

    name: str
    denoiser: Any
    source: str = ""
    path: str | None = None
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        """One line: method, axes, steps trained and where it came from."""
        denoiser = self.denoiser
        history = getattr(denoiser, "history", None) or []
        steps = f"{history[-1].get('step', 0)} steps" if history else "untrained"
        where = f" · {self.source}" if self.source else ""
        return f"{method_label(denoiser.method)} · {denoiser.config.axes} · {steps}{where}"


class ModelRegistry:
    """An ordered, name-unique collection of :class:`SessionModel` with a change signal."""

    changed = Signal()

    def __init__(self) -> None:
        self._models: dict[str, SessionModel] = {}

    def add(self, denoiser: Any, label: str, source: str = "", path: str | None = None) -> str:
        """Register a model under a unique name derived from ``label``; return the name."""
        for entry in self._models.values():
            if entry.denoiser is denoiser:
                entry.source, entry.path = source or entry.source, path or entry.path
                self.changed.emit()
                return entry.name
        name, number = label, 2
        while name in self._models:
            name, number = f"{label} [{number}]", number + 1
        self._models[name] = SessionModel(name, denoiser, source, path)
        self.changed.emit()
        return name

    def get(self, name: str) -> SessionModel:
        """The entry called ``name`` (KeyError if unknown)."""
        return self._models[name]

    def find(self, denoiser: Any) -> SessionModel | None:
        """The entry holding ``denoiser``, if registered."""
        return next((m for m in self._models.values() if m.denoiser is denoiser), None)

    def names(self) -> list[str]:
        """Names in the order models were added, newest last."""
        return list(self._models)

    def clear(self) -> None:
        """Forget every model (tests; a new session)."""
        self._models.clear()
        self.changed.emit()

    def __len__(self) -> int:
        return len(self._models)


SESSION_MODELS = ModelRegistry()
"""The registry all widgets of this process share."""
