"""SIGTERM / SIGINT during training: finish (or abandon) the current step, save, exit cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopSignals:
    """Context manager turning the first SIGTERM/SIGINT into a request (`requested`, `name`) that
    the loop honours at its next safe point; a second signal raises KeyboardInterrupt at once.
    Outside the main thread (where handlers cannot be installed) it only offers `request()`.
    """

    HANDLED = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self.name: str | None = None
        self._previous: dict[int, object] = {}

    def request(self, name: str = "stop request") -> None:
        self.requested = True
        self.name = name

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: abandoning without a checkpoint")
        self.request(signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
