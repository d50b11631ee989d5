"""What the commands print while they work: a progress bar, plain lines or JSON lines.

- ``bar``: a tqdm progress bar with the engine's ETA on stderr (an interactive terminal);
- ``lines``: one line every 10 s and at each validation on stdout (logs, pipes);
- ``json``: one JSON object per report on stdout (``--log-json``, for pipelines);
- ``quiet``: only the final summary (``--quiet``); other ranks under torchrun print nothing.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from .common import is_main_process

LINE_SECONDS = 10.0
"""Seconds between plain progress lines (a validation always prints one)."""

BAR_SECONDS = 0.1
"""Seconds between redraws of a progress bar."""


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    seconds = round(value)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Output:
    """Reports of one command in the mode the options and the terminal ask for.

    Parameters
    ----------
    mode : {'bar', 'lines', 'json', 'quiet', 'silent'}
        How to report (``silent``: not even the summary, for ranks other than 0).
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._bar: Any = None
        self._last = 0.0

    @classmethod
    def for_args(cls, args: Any) -> Output:
        """The mode for parsed options: ``--log-json``, ``--quiet``, else bar or lines."""
        if not is_main_process():
            return cls("silent")
        if getattr(args, "log_json", False):
            return cls("json")
        if getattr(args, "quiet", False):
            return cls("quiet")
        return cls("bar" if sys.stderr.isatty() else "lines")

    def event(self, kind: str, text: str, *, summary: bool = False, **fields: Any) -> None:
        """A message: ``text`` for people, ``{"event": kind, **fields}`` in JSON mode."""
        if self.mode == "json":
            self._json({"event": kind, **fields})
        elif self.mode in ("bar", "lines") or (summary and self.mode == "quiet"):
            self._close_bar()
            print(text, flush=True)

    def _json(self, record: dict) -> None:
        print(json.dumps(record, default=float), flush=True)

    # --- training ------------------------------------------------------------------------

    def training(self, progress: Any) -> None:
        """Callback for :meth:`Denoiser.fit`: one report per training step."""
        if self.mode in ("quiet", "silent"):
            return
        if self.mode == "bar":
            self._training_bar(progress)
            return
        now = time.perf_counter()
        if not (progress.validated or progress.done or now - self._last > LINE_SECONDS):
            return
        self._last = now
        if self.mode == "json":
            self._json({"event": "train", **progress.to_dict()})
            return
        val = f"{progress.val_loss:.5f}" if progress.val_loss is not None else "-"
        print(
            f"step {progress.step}/{progress.total_steps} epoch {progress.epoch} "
            f"loss {progress.loss:.5f} val {val} lr {progress.learning_rate:.2e} "
            f"{progress.steps_per_second:.1f} steps/s eta {_seconds(progress.eta_seconds)}",
            flush=True,
        )

    def _training_bar(self, progress: Any) -> None:
        if self._bar is None:
            self._bar = _tqdm(total=1000, desc="training", bar_format=_TRAIN_FORMAT)
        # The engine's ETA knows a time budget as well as a step budget.
        eta, elapsed = progress.eta_seconds, progress.elapsed_seconds
        if eta is not None and elapsed + eta > 0:
            fraction = elapsed / (elapsed + eta)
        else:
            fraction = progress.step / max(progress.total_steps, 1)
        val = f" val {progress.val_loss:.4f}" if progress.val_loss is not None else ""
        self._bar.set_postfix_str(
            f"step {progress.step} loss {progress.loss:.4f}{val} eta {_seconds(eta)}",
            refresh=False,
        )
        self._bar.update(max(int(fraction * 1000) - self._bar.n, 0))

    # --- prediction ----------------------------------------------------------------------

    def tiles(self, name: str):
        """A ``progress(done, total, eta)`` callback for :meth:`Denoiser.predict`."""
        self._last = time.perf_counter()
        self._close_bar()

        def report(done: int, total: int, eta: float | None) -> None:
            if self.mode == "bar":
                if self._bar is None:
                    self._bar = _tqdm(total=total, desc=name, unit="tile")
                self._bar.update(done - self._bar.n)
                return
            now = time.perf_counter()
            if self.mode in ("quiet", "silent") or (self.mode == "lines" and total <= 1):
                return
            if done < total and now - self._last < LINE_SECONDS:
                return
            self._last = now
            if self.mode == "json":
                self._json({"event": "predict", "file": name, "done": done, "total": total,
                            "eta_seconds": eta})  # fmt: skip
            else:
                shown = f"{done:.1f}" if done % 1 else f"{int(done)}"
                print(f"{name}: {shown}/{total} tiles, eta {_seconds(eta)}", flush=True)

        return report

    def close(self) -> None:
        """End a progress bar, if one is shown."""
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


_TRAIN_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {postfix}"


def _tqdm(**options: Any):
    from tqdm import tqdm

    return tqdm(
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
        mininterval=BAR_SECONDS,
        miniters=1,
        **options,
    )
