"""How fast `genoforge --help` and Tab completion answer (they must not import torch).

Run: python benchmarks/cli_startup.py [--repeats 10]
Prints the median wall time of `python -m genoforge --help`, of a completion request, and of
`python -c pass` (the interpreter's own floor), and whether torch got imported.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    env = dict(os.environ)
    floor = _time([sys.executable, "-c", "pass"], env, args.repeats)
    help_time = _time([sys.executable, "-m", "genoforge", "--help"], env, args.repeats)
    completion_env = dict(env, _GENOFORGE_COMPLETE="complete_bash", COMP_WORDS="genoforge to", COMP_CWORD="1")
    completion = _time([sys.executable, "-m", "genoforge"], completion_env, args.repeats)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from genoforge.cli.app import app; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"python -c pass          {floor * 1000:7.0f} ms (floor)")
    print(f"genoforge --help        {help_time * 1000:7.0f} ms")
    print(f"completion request      {completion * 1000:7.0f} ms")
    print(f"torch imported by CLI:  {probe}")


if __name__ == "__main__":
    main()
