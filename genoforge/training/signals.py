"""SIGINT and SIGTERM during ``tune``: the first asks the loop to stop after a checkpoint."""

from __future__ import annotations

import signal
import threading


class StopRequest(threading.Event):
    """Set when the run should stop after a checkpoint; ``signum`` is the signal that asked
    (``signal.SIGINT`` or ``signal.SIGTERM``), None while none has."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None


def install_stop_handlers(stop: StopRequest) -> dict:
    """SIGINT/SIGTERM set ``stop`` (the loop saves a checkpoint and returns); a second one raises
    KeyboardInterrupt at once. Only the main thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        if stop.is_set():
            raise KeyboardInterrupt
        stop.signum = signum
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore_handlers(previous: dict) -> None:
    """Put back the handlers :func:`install_stop_handlers` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)
