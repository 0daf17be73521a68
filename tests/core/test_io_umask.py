"""Atomic writes respect the umask: mkstemp/mkdtemp's private 0600/0700 never reach the artifact."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from genoforge.io import atomic_dir, atomic_write, umask_mode


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_gives_what_open_gives(tmp_path: Path, umask: None) -> None:
    with atomic_write(tmp_path / "out.json") as handle:
        handle.write("{}")
    with atomic_write(tmp_path / "weights.bin", "wb") as handle:
        handle.write(b"\0")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(tmp_path / "out.json") == _mode(tmp_path / "weights.bin") == _mode(plain) == 0o644


def test_atomic_dir_gives_what_mkdir_gives(tmp_path: Path, umask: None) -> None:
    with atomic_dir(tmp_path / "model") as folder:
        with atomic_write(folder / "config.json") as handle:
            handle.write("{}")
    (tmp_path / "plain").mkdir()
    assert _mode(tmp_path / "model") == _mode(tmp_path / "plain") == 0o755
    assert _mode(tmp_path / "model" / "config.json") == 0o644


def test_a_strict_umask_is_kept(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        assert umask_mode(0o666) == 0o600 and umask_mode(0o777) == 0o700
        with atomic_write(tmp_path / "private.txt") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "private.txt") == 0o600
    assert os.umask(previous) == previous  # umask_mode left the umask as it found it
