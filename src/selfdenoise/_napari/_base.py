"""Building blocks shared by the dock widgets: form layout, field parsing, worker handling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QScrollArea,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QVBoxLayout,
    QWidget,
)

from .._errors import SelfDenoiseError
from ._feedback import Outcome, notify_error, outcome_from_exception, wait_until
from ._layers import unwrap_viewer, watch_layers

if TYPE_CHECKING:
    import napari.viewer

MINIMUM_WIDTH = 380
"""Dock widgets are at least this wide (pixels), so labels and the plots stay readable."""


def parse_shape(text: str, ndim: int, name: str) -> tuple[int, ...] | None:
    """Parse ``'auto'``, ``'64'`` or ``'16,64,64'`` into a spatial shape (or None for auto).

    Parameters
    ----------
    text : str
        What the user typed; one number is repeated for every spatial dimension.
    ndim : int
        Number of spatial dimensions (2 or 3).
    name : str
        Field name for the error message.
    """
    cleaned = text.strip().lower().replace("x", ",").replace(" ", ",")
    if cleaned in ("", "auto", "none"):
        return None
    try:
        values = tuple(int(part) for part in cleaned.split(",") if part)
    except ValueError:
        raise SelfDenoiseError(
            f"{name} must be 'auto' or whole numbers such as 64 or 16,64,64; got {text!r}."
        ) from None
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim or any(v < 0 for v in values):
        raise SelfDenoiseError(
            f"{name} needs {ndim} non-negative numbers for {ndim}D data; got {text!r}."
        )
    return values


def hint_label(text: str = "") -> QLabel:
    """A small, word-wrapped, dimmed label for explanations under a field."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet("QLabel { font-style: italic; }")
    return label


def form_layout() -> QFormLayout:
    """A form whose fields grow with the dock and whose labels never get cut off."""
    form = QFormLayout()
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    form.setContentsMargins(0, 0, 0, 0)
    return form


def add_row(form: QFormLayout, label: str, widget: Any, tooltip: str = "") -> None:
    """Add a labelled row; ``widget`` may be a magicgui widget or a QWidget."""
    native = getattr(widget, "native", widget)
    if isinstance(native, QComboBox):
        shrinkable(native)
    if tooltip:
        native.setToolTip(tooltip)
    row_label = QLabel(label)
    row_label.setToolTip(tooltip)
    form.addRow(row_label, native)


_RUNNING_WORKERS: set[Any] = set()
"""Workers stay referenced until they finish, even if their widget is closed meanwhile."""


def keep_alive(worker: Any) -> Any:
    """Hold a reference to ``worker`` until it has finished; returns it."""
    _RUNNING_WORKERS.add(worker)
    worker.finished.connect(lambda: _RUNNING_WORKERS.discard(worker))
    return worker


class _ElidedComboText(QObject):
    """Paints a combo box with its current text elided in the middle ("noisy … (N2V)")
    instead of cut off at the right edge; the full text stays in the tooltip."""

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        if not isinstance(watched, QComboBox) or event is None:
            return False
        if event.type() != QEvent.Type.Paint or watched.isEditable():
            return False
        painter = QStylePainter(watched)
        option = QStyleOptionComboBox()
        watched.initStyleOption(option)
        style = watched.style()
        if style is None:
            return False
        field = style.subControlRect(
            QStyle.ComplexControl.CC_ComboBox,
            option,
            QStyle.SubControl.SC_ComboBoxEditField,
            watched,
        )
        option.currentText = watched.fontMetrics().elidedText(
            option.currentText, Qt.TextElideMode.ElideMiddle, max(field.width() - 4, 8)
        )
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)
        return True


_ELIDER = _ElidedComboText()


def shrinkable(combo: QComboBox, characters: int = 12) -> None:
    """Let a combo box get narrower than its longest entry; long names elide in the middle."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(characters)
    combo.installEventFilter(_ELIDER)


def _disconnector(connections: list[tuple[Any, Callable]]) -> Callable[..., None]:
    """A function that disconnects every ``(emitter, callback)`` pair (when a widget dies)."""

    def disconnect(*_: Any) -> None:
        for emitter, callback in connections:
            try:
                emitter.disconnect(callback)
            except (RuntimeError, TypeError, ValueError):
                pass
        connections.clear()

    return disconnect


class ProgressRelay(QObject):
    """Carries ``(done, total, eta_seconds)`` from a worker thread to the GUI thread.

    ``done`` may be fractional: tiled prediction reports progress inside a long batch.
    """

    progressed = Signal(float, int, object)

    def __call__(self, done: float, total: int, eta: float | None = None) -> None:
        self.progressed.emit(float(done), int(total), eta)


class WorkerWidget(QWidget):
    """Base of the dock widgets: holds the viewer, runs jobs in napari thread workers.

    Parameters
    ----------
    napari_viewer : napari.Viewer or napari.components.ViewerModel
        The viewer (napari passes it when docking the widget).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer: napari.viewer.Viewer = unwrap_viewer(napari_viewer)
        self.worker: Any = None
        self.last_error = ""
        self.content = QWidget()
        self.content_layout = QVBoxLayout(self.content)
        self.setMinimumWidth(MINIMUM_WIDTH)
        scroll = self.scroll_area = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._connections = watch_layers(self.viewer, self.reset_choices)
        self.destroyed.connect(_disconnector(self._connections))

    def connect_while_alive(self, emitter: Any, callback: Callable[..., Any]) -> None:
        """Connect ``callback`` to ``emitter`` until this widget is destroyed."""
        emitter.connect(callback)
        self._connections.append((emitter, callback))

    def reset_choices(self, *_: Any) -> None:
        """Refresh layer pickers (napari also calls this when layers change)."""

    @property
    def is_running(self) -> bool:
        """True while a job of this widget runs in its thread."""
        return self.worker is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Process events until the running job ends (for scripts); False on timeout."""
        return wait_until(lambda: not self.is_running, timeout)

    def fail(self, message: str) -> None:
        """Show a one-line error notification and remember it in :attr:`last_error`."""
        self.last_error = message
        notify_error(message)

    def guarded(self, action: Callable[[], Any]) -> Any:
        """Run a GUI-thread action; expected errors become notifications (returns None)."""
        try:
            return action()
        except Exception as exc:
            outcome = outcome_from_exception(exc)
            if outcome.error:
                self.fail(outcome.error)
            return None

    def start_job(
        self,
        function: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Outcome], None],
        on_yield: Callable[[Any], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> Any:
        """Run ``function(*args)`` in a napari thread worker.

        ``function`` returns an :class:`Outcome` (a generator function may yield updates
        first, delivered to ``on_yield``); ``on_done`` gets the outcome in the GUI thread, and
        ``on_warning`` the one-line message of each warning raised by this package (napari
        does not relay a worker's warnings itself; other libraries' warnings stay out).
        """
        from napari.qt.threading import create_worker

        connections: dict[str, Any] = {
            "returned": lambda outcome: self._job_returned(outcome, on_done),
            "errored": self._job_errored,
            "finished": self._job_finished,
        }
        if on_yield is not None:
            connections["yielded"] = on_yield
        if on_warning is not None:
            connections["warned"] = lambda shown: _relay_own_warning(shown, on_warning)
        self.last_error = ""
        worker = create_worker(function, *args, _connect=connections, _start_thread=False)
        self.worker = keep_alive(worker)
        worker.start()
        return worker

    def _job_returned(self, outcome: Any, on_done: Callable[[Outcome], None]) -> None:
        if not isinstance(outcome, Outcome):
            outcome = Outcome(value=outcome)
        if outcome.error:
            self.fail(outcome.error)
        on_done(outcome)

    def _job_errored(self, exc: BaseException) -> None:
        outcome = outcome_from_exception(exc)
        if outcome.error:
            self.fail(outcome.error)

    def _job_finished(self) -> None:
        self.worker = None
        self.job_finished()

    def job_finished(self) -> None:
        """Hook: a job ended (after ``on_done``); restore buttons here."""


def _relay_own_warning(shown: tuple, on_warning: Callable[[str], None]) -> None:
    """Pass a worker's warning (``warnings.showwarning`` arguments) to ``on_warning`` as one
    line when this package raised it."""
    message, _category, filename = shown[:3]
    if "selfdenoise" in Path(str(filename)).parts:
        on_warning(" ".join(str(message).split()))
