"""tune's progress bar of optimizer steps on a terminal (:class:`StepBar`), and the rate and ETA
formats the log lines and the live panel share with it."""

from __future__ import annotations

import math
import time

BAR_UPDATE_S = 0.25  # the step loop hands the bar a new step at most 4 times a second
BAR_REFRESH_PER_S = 4  # rich redraws the bar (elapsed time, ETA) from its own thread


def format_rate(steps_per_s: float | None) -> str:
    """Optimizer steps per second, with the seconds per step where a step takes longer than 1 s."""
    if not steps_per_s:
        return "-"
    if steps_per_s >= 1:
        return f"{steps_per_s:.2f} steps/s"
    return f"{steps_per_s:.2f} steps/s ({1 / steps_per_s:.1f} s/step)"


def format_duration(seconds: float | None) -> str:
    """H:MM:SS (as rich's ETA column), '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class StepBar:
    """A rich progress bar of optimizer steps on the library's stderr console: description, bar,
    step/total, steps/s, ETA.

    Log lines printed through :func:`genoforge.console.info` meanwhile appear above it (rich's live
    display owns the console). :meth:`update` costs the step loop one ``time.monotonic()`` per
    step: it passes the step on at most every :data:`BAR_UPDATE_S` seconds, and rich redraws from
    its own thread. rich.progress is imported only here, i.e. only on a terminal.
    """

    def __init__(self, total_steps: int, *, start_step: int = 0, console=None, description: str = "tune"):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from genoforge import console as library_console

        self.step = start_step
        self._shown = start_step
        self._last_update = time.monotonic()
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("steps"), _rate_column(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console if console is not None else library_console.stderr,
            refresh_per_second=BAR_REFRESH_PER_S, transient=False,
        )
        self._task = self._progress.add_task(description, total=total_steps, completed=start_step)
        self._progress.start()

    def update(self, step: int) -> None:
        """Optimizer step ``step`` is done (throttled; see the class docstring)."""
        self.step = step
        now = time.monotonic()
        if now - self._last_update >= BAR_UPDATE_S:
            self._last_update = now
            self._push()

    def flush(self) -> None:
        """Show the newest step now (before a log line or an evaluation, which may take a while)."""
        self._last_update = time.monotonic()
        self._push()
        self._progress.refresh()  # a line printed now redraws the bar as last rendered

    def _push(self) -> None:
        if self.step != self._shown:
            self._progress.update(self._task, completed=self.step)
            self._shown = self.step

    def close(self) -> None:
        """Show the last step and stop the display (the final bar stays on the terminal)."""
        if self._progress is not None:
            self._push()
            self._progress.stop()
            self._progress = None


def _rate_column():  # built lazily: rich.progress is imported only for terminals
    from rich.progress import ProgressColumn
    from rich.text import Text

    class StepRateColumn(ProgressColumn):
        def render(self, task):  # type: ignore[no-untyped-def]
            return Text(format_rate(task.finished_speed or task.speed), style="progress.data.speed")

    return StepRateColumn()
