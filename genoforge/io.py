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
    """Open a text file that may be plain, gzip or bgzip; lines keep their endings (newline='').

    Lines end at LF, CRLF or a lone CR (universal newlines, untranslated).

    Raises:
        InputError: the file is missing, a directory, or cannot be read (permissions).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found; check the path", path)
    if path.is_dir():
        raise InputError("is a directory, expected a file", path)
    try:
        if is_gzip(path):
            return _CheckedGzipText(path)
        return open(path, encoding="utf-8", newline="")
    except PermissionError as exc:
        raise InputError(f"cannot be read ({exc.strerror}); check its permissions", path) from None


def first_non_utf8_line(path: str | Path) -> tuple[int, int, int] | None:
    """Where a (plain or gzip) file first fails to decode as UTF-8: ``(line, column, byte)``,
    1-based, or None if every line decodes. Lines are split at LF, CRLF and lone CR, as
    :func:`open_text` splits them, so the line number matches the one a reader counted."""
    opener = gzip.open if is_gzip(path) else open
    line_no = 0
    with opener(path, "rb") as handle:  # type: ignore[operator]
        for raw in handle:
            # bytes lines end at LF only: split a chunk further at lone CRs.
            pieces = raw.replace(b"\r\n", b"\n").split(b"\r")
            for piece in pieces:
                line_no += 1
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return line_no, exc.start + 1, piece[exc.start]
            if raw.endswith(b"\r"):
                line_no -= 1  # the empty piece after a trailing lone CR is not a line
    return None


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process umask: what ``open()`` (0o666) or ``mkdir`` (0o777) would give.

    tempfile.mkstemp/mkdtemp create 0600/0700 entries (private on purpose); an artifact renamed
    from one into place must get the mode a plain write would have given it instead.
    """
    current = os.umask(0)  # the only way to read the umask; set straight back
    os.umask(current)
    return mode & ~current


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, umask_mode(0o666))  # mkstemp made it 0600
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
        os.chmod(tmp, umask_mode(0o777))  # mkdtemp made it 0700
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
