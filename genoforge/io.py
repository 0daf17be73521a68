"""File helpers: open plain/gzip/bgzip by magic bytes, and write atomically.

Compression is detected from the first bytes, never from the extension: gzip and bgzip (which is
gzip with extra fields) both start with 1f 8b. A truncated gzip stream raises InputError naming the
file instead of a bare EOFError.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from genoforge.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


class _CheckedGzipText(io.TextIOWrapper):
    """Text over gzip that reports truncation/corruption as InputError with the file name."""

    def __init__(self, path: Path):
        self._path = path
        super().__init__(gzip.open(path, "rb"), encoding="utf-8", newline="")

    def _wrap(self, call):  # type: ignore[no-untyped-def]
        try:
            return call()
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise InputError(
                f"compressed stream is truncated or corrupt ({exc}); re-download or recompress it",
                self._path,
            ) from exc

    def readline(self, size: int = -1) -> str:  # type: ignore[override]
        return self._wrap(lambda: super(_CheckedGzipText, self).readline(size))

    def read(self, size: int | None = -1) -> str:  # type: ignore[override]
        return self._wrap(lambda: super(_CheckedGzipText, self).read(size))

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def open_text(path: str | Path) -> IO[str]:
    """Open a text file that may be plain, gzip or bgzip; lines keep their endings (newline='')."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found; check the path", path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path)
    if is_gzip(path):
        return _CheckedGzipText(path)
    return open(path, encoding="utf-8", newline="")


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``path``; rename it into place on success.

    Nothing at ``path`` looks complete until the body has finished. With ``overwrite`` an existing
    directory is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise InputError("already exists; pass --overwrite or choose another path", path)
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
