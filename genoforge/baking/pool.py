"""The process pool of a bake: running its species jobs, with one progress display.

:func:`run_species` bakes the species one after another, sharing one pool of ``n_workers`` chunk
workers, or ``species_parallel`` at once, each in a species process of its own that forks its own
chunk workers and reports progress through a queue. Each species process leads a process group, so
a failure or Ctrl-C stops every species and every chunk worker at once (:func:`_terminate`) instead
of waiting for them. A failing species raises, or with ``keep_going`` is recorded and skipped.
"""

from __future__ import annotations

import os
import queue as queue_module
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from genoforge.baking.chunks import process_context
from genoforge.baking.config import BakeConfig
from genoforge.baking.species import SpeciesJob, SpeciesResult, bake_species
from genoforge.errors import GenoforgeError

# Species processes report progress through this queue (set by the pool initializer).
_PROGRESS_QUEUE: Any = None


def _init_species_process(progress_queue: Any) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue
    if hasattr(os, "setpgid"):
        # Lead a process group holding this species' chunk workers, so that _terminate reaches
        # them all. (Ctrl-C in a terminal reaches the main process, which then calls _terminate.)
        os.setpgid(0, 0)


def _queue_report(species: str, event: str, amount: float) -> None:
    _PROGRESS_QUEUE.put((species, event, amount))


def _bake_species_in_process(job: SpeciesJob) -> SpeciesResult:
    return bake_species(job, _queue_report)


def run_species(jobs: list[SpeciesJob], config: BakeConfig, failed: dict[str, str]) -> dict[str, SpeciesResult]:
    """Bake every job (species_parallel at once), with a progress display; results by species.

    A failing species raises, or with ``keep_going`` is recorded in ``failed`` and skipped.
    """
    from genoforge.console import progress, warn

    results: dict[str, SpeciesResult] = {}
    if not jobs:
        return results
    state = _ProgressState(len(jobs))

    def record_failure(name: str, exc: BaseException) -> None:
        if not (config.keep_going and isinstance(exc, GenoforgeError)):
            raise exc
        failed[name] = str(exc)
        warn(f"skipping species {name}: {exc}")

    if config.species_parallel == 1 or len(jobs) == 1:
        # Pools are forked before the progress display starts its refresh thread.
        pool = ProcessPoolExecutor(config.n_workers, mp_context=process_context()) if config.n_workers > 1 else None
        try:
            if pool is not None:
                pool.submit(int).result()  # start the workers now, before any thread exists
            with progress(state.description(), total=None, unit="bp") as bar:
                state.bar = bar
                for job in jobs:
                    try:
                        results[job.species.name] = bake_species(job, state.event, pool)
                    except BaseException as exc:  # noqa: BLE001 - re-raised unless keep_going
                        record_failure(job.species.name, exc)
                    state.species_done += 1
                    state.refresh()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return results

    context = process_context()
    progress_queue = context.Queue()
    pool = ProcessPoolExecutor(
        min(config.species_parallel, len(jobs)),
        mp_context=context,
        initializer=_init_species_process,
        initargs=(progress_queue,),
    )
    stopped = False
    try:
        futures = {pool.submit(_bake_species_in_process, job): job.species.name for job in jobs}
        with progress(state.description(), total=None, unit="bp") as bar:
            state.bar = bar
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, state)
                for future in sorted(done, key=lambda f: futures[f]):
                    name = futures[future]
                    try:
                        results[name] = future.result()
                    except BrokenProcessPool as exc:
                        raise GenoforgeError(
                            f"a bake process died while baking {name} (out of memory?); lower "
                            "--species_parallel / --n_workers"
                        ) from exc
                    except BaseException as exc:  # noqa: BLE001 - re-raised unless keep_going
                        record_failure(name, exc)
                    state.species_done += 1
                    state.refresh()
            _drain(progress_queue, state)
    except BaseException:
        # A failure (or Ctrl-C) should not wait for the other species: stop them and their workers.
        stopped = True
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=not stopped, cancel_futures=True)
        progress_queue.close()
    return results


def _drain(progress_queue: Any, state: _ProgressState) -> None:
    while True:
        try:
            species, event, amount = progress_queue.get_nowait()
        except queue_module.Empty:
            return
        state.event(species, event, amount)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the species processes of ``pool`` and their chunk workers, now.

    Each species process leads its own process group (:func:`_init_species_process`), so one
    signal to the group also reaches the chunk workers it forked; terminating only the species
    process would leave them orphaned, blocked on their task queue forever.
    """
    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (AttributeError, OSError):  # no process groups here, or not set up yet
            process.terminate()
    for process in list(getattr(pool, "_processes", {}).values()):
        process.join(timeout=5)


@dataclass
class _ProgressState:
    n_species: int
    species_done: int = 0
    windows: int = 0
    total_bases: float = 0.0
    bar: Any = None

    def description(self) -> str:
        return f"bake: {self.species_done}/{self.n_species} species, {self.windows:,} windows"

    def refresh(self) -> None:
        if self.bar is not None:
            self.bar.update(description=self.description(), total=self.total_bases or None)

    def event(self, species: str, event: str, amount: float) -> None:
        if event == "total":
            self.total_bases += amount
            self.refresh()
        elif event == "bases" and self.bar is not None:
            self.bar.advance(amount)
        elif event == "windows":
            self.windows += int(amount)
            self.refresh()


__all__ = ["run_species"]
