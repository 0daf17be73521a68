"""``--memwatch``: sample memory in a background thread and append it to a CSV file.

Columns: ``time_s`` (seconds since start), ``host_rss_mb`` (resident set of this process),
``gpu_allocated_mb``, ``gpu_reserved_mb``, ``gpu_peak_allocated_mb`` (PyTorch's caching allocator
on the current CUDA device; empty on CPU) and ``step`` (the last optimizer step the loop reported).
The allocator queries read host-side counters: they do not synchronise the device.
"""

from __future__ import annotations

import csv
import os
import resource
import threading
import time
from pathlib import Path

COLUMNS = ("time_s", "host_rss_mb", "gpu_allocated_mb", "gpu_reserved_mb", "gpu_peak_allocated_mb", "step")
_MB = 1024 * 1024


def host_rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def gpu_memory(device) -> tuple[int, int, int] | None:
    """(allocated, reserved, peak allocated) bytes on ``device``, or None when it is not CUDA."""
    import torch

    if device is None or getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return None
    return (
        torch.cuda.memory_allocated(device),
        torch.cuda.memory_reserved(device),
        torch.cuda.max_memory_allocated(device),
    )


class MemWatch:
    """A daemon thread writing one CSV row every ``interval`` seconds until :meth:`stop`.

    Use as a context manager. ``step`` may be updated by the training loop at any time.
    """

    def __init__(self, path: str | Path, *, interval: float = 1.0, device=None):
        self.path = Path(path)
        self.interval = interval
        self.device = device
        self.step = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self.rows_written = 0

    def sample(self) -> dict[str, str]:
        gpu = gpu_memory(self.device)
        fmt = lambda b: f"{b / _MB:.1f}"  # noqa: E731
        return {
            "time_s": f"{time.monotonic() - self._started:.3f}",
            "host_rss_mb": fmt(host_rss_bytes()),
            "gpu_allocated_mb": fmt(gpu[0]) if gpu else "",
            "gpu_reserved_mb": fmt(gpu[1]) if gpu else "",
            "gpu_peak_allocated_mb": fmt(gpu[2]) if gpu else "",
            "step": str(self.step),
        }

    def _run(self) -> None:
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            if new_file:
                writer.writeheader()
            while True:
                writer.writerow(self.sample())
                self.rows_written += 1
                handle.flush()
                if self._stop.wait(self.interval):
                    break
            writer.writerow(self.sample())  # the state at shutdown
            self.rows_written += 1

    def start(self) -> MemWatch:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="genoforge-memwatch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> MemWatch:
        return self.start()

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self.stop()
