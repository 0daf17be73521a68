"""Temporaries a SIGKILL leaves behind are removed by the next writer of the same output.

genoforge.io's atomic helpers write ``.NAME.pid<PID>-<random>.tmp`` beside NAME. A killed writer
cannot remove its temporary, so the next atomic write of NAME removes those whose pid is gone
(and pid-less ones of earlier versions that predate this process), never a live writer's, never
another output's. Checked for a plain file (predict's GFF3), a folder (bake's output_dir) and a
tune run's ``.step-*.tmp`` checkpoint folders, plus the folder fsync after each rename.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genoforge import io as gio


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    try:
        os.kill(child.pid, 0)
    except ProcessLookupError:
        return child.pid
    pytest.skip("the exited child's pid was reused at once")


@pytest.fixture
def live_pid():
    """The pid of another process that is running for the whole test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


def _make(path: Path, as_dir: bool, age_s: float = 0.0) -> Path:
    if as_dir:
        path.mkdir()
        (path / "part.bin").write_bytes(b"half-written")
    else:
        path.write_bytes(b"half-written")
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def _siblings(folder: Path, name: str, dead: int, live: int, as_dir: bool) -> tuple[list[Path], list[Path]]:
    """(stale temporaries of ``name`` that must go, files that must stay) in ``folder``."""
    stale = [
        _make(folder / f".{name}.pid{dead}-a1b2c3d4.tmp", as_dir),
        _make(folder / f".{name}.k9_x7y2z.tmp", as_dir, age_s=3600),  # pid-less, before we started
    ]
    kept = [
        _make(folder / f".{name}.pid{live}-e5f6g7h8.tmp", as_dir),  # a live writer's
        _make(folder / f".{name}.pid{os.getpid()}-q1w2e3r4.tmp", as_dir),  # our own
        _make(folder / f".{name}.m3n4o5p6.tmp", as_dir),  # pid-less, newer than this process
        _make(folder / f".other.{name}.pid{dead}-a1b2c3d4.tmp", as_dir),  # another output's
        _make(folder / f".{name}.pid{dead}-a1b2c3d4.tmp.keep", as_dir),  # not the pattern
        _make(folder / f"{name}.pid{dead}-a1b2c3d4.tmp", as_dir),  # not hidden: a user's file
    ]
    return stale, kept


def test_atomic_write_removes_dead_writers_temp_files(tmp_path: Path, dead_pid: int, live_pid: int) -> None:
    stale, kept = _siblings(tmp_path, "genome.gff3", dead_pid, live_pid, as_dir=False)
    with gio.atomic_write(tmp_path / "genome.gff3") as handle:
        handle.write("##gff-version 3\n")
        mine = [p for p in tmp_path.iterdir() if p.name.startswith(f".genome.gff3.pid{os.getpid()}-")]
        assert len(mine) == 2  # the kept one of ours, and the one being written
    assert (tmp_path / "genome.gff3").read_text() == "##gff-version 3\n"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    # Nothing of this write is left: only the files the test made, and the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([p.name for p in kept] + ["genome.gff3"])


def test_atomic_dir_removes_dead_writers_temp_folders(tmp_path: Path, dead_pid: int, live_pid: int) -> None:
    stale, kept = _siblings(tmp_path, "baked", dead_pid, live_pid, as_dir=True)
    with gio.atomic_dir(tmp_path / "baked") as staging:
        assert staging.name.startswith(f".baked.pid{os.getpid()}-") and staging.name.endswith(".tmp")
        (staging / "manifest.json").write_text("{}")
    assert (tmp_path / "baked" / "manifest.json").read_text() == "{}"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


def test_remove_stale_temps_is_a_no_op_without_a_folder(tmp_path: Path) -> None:
    assert gio.remove_stale_temps(tmp_path / "absent" / "out.gff3") == []


def test_bake_removes_a_killed_bakes_temp_folder(
    tmp_path: Path, tiny_raw_dir: Path, baking_tokenizer_dir: Path, dead_pid: int, live_pid: int
) -> None:
    from typer.testing import CliRunner

    from genoforge.cli.app import app

    out = tmp_path / "out"
    out.mkdir()
    killed = _make(out / f".baked.pid{dead_pid}-s7t8u9v0.tmp", as_dir=True)
    running = _make(out / f".baked.pid{live_pid}-w1x2y3z4.tmp", as_dir=True)
    args = ["--raw_dir", str(tiny_raw_dir), "--output_dir", str(out / "baked"), "--window_size", "5000"]
    result = CliRunner().invoke(app, ["bake", *args, "--tokenizer", str(baking_tokenizer_dir)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(["baked", running.name])
    assert not killed.exists()


def test_gff_writer_removes_a_killed_predicts_temp_file(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    from genoforge.inference.gff_writer import open_gff

    killed = _make(tmp_path / f".pred.gff3.pid{dead_pid}-a1a2a3a4.tmp", as_dir=False)
    running = _make(tmp_path / f".pred.gff3.pid{live_pid}-b1b2b3b4.tmp", as_dir=False)
    with open_gff(tmp_path / "pred.gff3", "m", None, [("chr1", 100)]):
        pass
    assert (tmp_path / "pred.gff3").read_text().startswith("##gff-version 3")
    assert not killed.exists() and running.exists()


def test_checkpoint_save_removes_killed_saves_of_any_step(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    torch = pytest.importorskip("torch")
    from genoforge.training import checkpoint as ckpt

    killed = _make(tmp_path / f".step-00000200.pid{dead_pid}-c1c2c3c4.tmp", as_dir=True)
    running = _make(tmp_path / f".step-00000300.pid{live_pid}-d1d2d3d4.tmp", as_dir=True)
    export = _make(tmp_path / f".best.pid{dead_pid}-e1e2e3e4.tmp", as_dir=True)  # not a step: left
    path = ckpt.save_checkpoint(
        tmp_path, 100, model_state={"w": torch.zeros(3)}, optimizer_state={"state": {}, "param_groups": []},
        rng_state={"torch_cpu": torch.get_rng_state()}, trainer_state={"global_step": 100},
    )
    assert path.name == "step-00000100"
    ckpt.verify_checkpoint(path)
    assert not killed.exists()
    assert running.exists() and export.exists()


def test_renames_are_followed_by_a_folder_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[tuple[Path, list[str]]] = []

    def record(directory: str | Path) -> None:
        visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        synced.append((Path(directory), visible))

    monkeypatch.setattr(gio, "fsync_directory", record)
    with gio.atomic_write(tmp_path / "out.txt") as handle:
        handle.write("x")
    with gio.atomic_dir(tmp_path / "out"):
        pass
    # Each fsync came after its rename (the output existed by then), on the output's folder.
    assert synced == [(tmp_path, ["out.txt"]), (tmp_path, ["out", "out.txt"])]
    gio.fsync_directory(tmp_path)  # the real one runs on a real folder
    gio.fsync_directory(tmp_path / "absent")  # and is quiet where there is none
