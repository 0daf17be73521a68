"""Shared by the benchmark scripts: the machine they ran on, and one `## ` section of
benchmarks/RESULTS.md replaced in place."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from genoforge.io import atomic_write


def write_section(path: Path, text: str, heading: str) -> None:
    """Replace the ``heading`` section of the Markdown file ``path`` with ``text`` (or append it).

    A section runs from its heading line to the next ``## `` heading; the rest of the file is kept.
    """
    old = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = old.find(heading + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(heading))
        tail = old[end + 1 :] if end >= 0 else ""
        new = old[:start] + text + ("\n" + tail if tail else "")
    with atomic_write(path) as handle:
        handle.write(new)


def machine() -> str:
    """CPU count and model, OS and Python version, e.g. for a results table's caption."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} CPUs ({model}), {system}"
