"""The one place library code reaches rich: a stderr console, messages and progress.

Results go to stdout (the CLI prints them); everything here writes to stderr. When stderr is not a
terminal, progress does not animate: it prints one plain line every ``plain_every`` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console

stderr = Console(stderr=True, highlight=False)


def info(message: str) -> None:
    """A progress or status line on stderr."""
    stderr.print(message, markup=False)


def warn(message: str) -> None:
    """A yellow warning on stderr, on one line whatever the terminal width (so logs can be grepped):
    rich does not wrap it, and a newline in ``message`` becomes a space."""
    one_line = " ".join(message.split("\n"))
    stderr.print(f"[yellow]Warning:[/yellow] {_escape(one_line)}", soft_wrap=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@dataclass
class Progress:
    """A progress counter: a rich bar on a terminal, plain periodic lines elsewhere."""

    description: str
    total: float | None
    unit: str
    plain_every: float = 10.0
    done: float = 0.0
    _bar: object = None
    _task: object = None
    _started: float = field(default_factory=time.monotonic)
    _last_plain: float = field(default_factory=time.monotonic)

    def advance(self, amount: float = 1.0) -> None:
        self.done += amount
        if self._bar is not None:
            self._bar.update(self._task, advance=amount)  # type: ignore[attr-defined]
            return
        now = time.monotonic()
        if now - self._last_plain >= self.plain_every:
            self._last_plain = now
            self._print_plain()

    def update(self, *, description: str | None = None, total: float | None = None) -> None:
        """Change the description or the total (e.g. once the work's size becomes known)."""
        if description is not None:
            self.description = description
        if total is not None:
            self.total = total
        if self._bar is not None:
            self._bar.update(self._task, description=self.description, total=self.total)  # type: ignore[attr-defined]

    def _print_plain(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        rate = self.done / elapsed
        total = f"/{self.total:,.0f}" if self.total else ""
        info(f"{self.description}: {self.done:,.0f}{total} {self.unit} ({rate:,.0f} {self.unit}/s)")


@contextmanager
def progress(description: str, total: float | None, unit: str) -> Iterator[Progress]:
    """Show progress of long work in natural units (bases, windows, steps)."""
    tracker = Progress(description=description, total=total, unit=unit)
    if stderr.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        columns = [
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TaskProgressColumn(),
            _RateColumn(unit),
            TimeRemainingColumn(),
        ]
        with RichProgress(*columns, console=stderr, transient=False) as bar:
            tracker._bar = bar
            tracker._task = bar.add_task(description, total=total)
            yield tracker
    else:
        yield tracker
        tracker._print_plain()


def _rate_column_class():  # built lazily: rich.progress is only imported for terminals
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def __init__(self, unit: str):
            super().__init__()
            self.unit = unit

        def render(self, task):  # type: ignore[no-untyped-def]
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s")

    return RateColumn


def _RateColumn(unit: str):  # noqa: N802 - reads like the column class it builds
    return _rate_column_class()(unit)


def is_interactive() -> bool:
    return sys.stderr.isatty()


@contextmanager
def live_table(title: str) -> Iterator[Callable[[Mapping[str, str]], None]]:
    """A live two-column panel on stderr (for terminals); the yielded ``update(fields)`` merges
    ``fields`` (name -> text) into the panel and redraws it."""
    from rich.live import Live
    from rich.table import Table

    fields: dict[str, str] = {}

    def render() -> Table:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for name, value in fields.items():
            table.add_row(name, value)
        return table

    with Live(render(), console=stderr, refresh_per_second=4, transient=False) as live:

        def update(new_fields: Mapping[str, str]) -> None:
            fields.update(new_fields)
            live.update(render())

        yield update
