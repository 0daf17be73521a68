"""File helpers: open plain/gzip/bgzip by magic bytes, and write atomically.

Compression is detected from the first bytes, never from the extension: gzip and bgzip (which is
gzip with extra fields) both start with 1f 8b. A truncated gzip stream raises InputError naming the
file instead of a bare EOFError.

Atomic writes (:func:`atomic_write`, :func:`atomic_dir`) build ``NAME`` as the sibling
``.NAME.pid<PID>-<random>.tmp`` (file or folder), rename it into place when complete and fsync the
folder, so the rename survives a power cut. A writer killed outright (SIGKILL, OOM killer) cannot
remove its temporary; the next writer of the same ``NAME`` does (:func:`remove_stale_temps`): a
temporary whose process is gone, or, for the names without a pid that earlier versions wrote
(``.NAME.<random>.tmp``), one last modified before this process started. A live writer's
temporary is never touched. The pid is only meaningful on one host: two hosts writing the same
folder of a shared file system should not write the same ``NAME``.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from genoforge.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# When this process started (near enough: genoforge.io is imported at startup); temporaries of
# unknown writers older than this are stale.
_PROCESS_STARTED = time.time()
# mkstemp/mkdtemp's random part: 8 of [a-z0-9_] (tempfile._RandomNameSequence).
_RANDOM = r"[a-z0-9_]{8}"


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


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.pid{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except OSError:
        return True  # cannot tell: keep its file
    return True


def remove_stale_temps(path: str | Path, name_pattern: str | None = None) -> list[Path]:
    """Remove the temporaries that dead writers of ``path`` left beside it (module docstring).

    Args:
        path: the output whose siblings are checked (it need not exist).
        name_pattern: a regular expression for the output names to clean instead of exactly
            ``path.name``, e.g. ``r"step-\\d{8}"`` for every checkpoint folder beside ``path``.

    Returns:
        The files and folders removed.
    """
    path = Path(path)
    name = name_pattern if name_pattern is not None else re.escape(path.name)
    pattern = re.compile(rf"\.(?:{name})\.(?:pid(?P<pid>\d+)-)?{_RANDOM}\.tmp")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    removed = []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            if match["pid"] is not None:
                if _pid_alive(int(match["pid"])):
                    continue
            elif entry.stat(follow_symlinks=False).st_mtime >= _PROCESS_STARTED:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another cleaner got there first
        except OSError:
            continue  # not ours to remove (permissions): leave it
        removed.append(Path(entry.path))
    return removed


def fsync_directory(directory: str | Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where folders cannot be fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. Windows, some network file systems
    finally:
        os.close(fd)


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
    """Write ``path`` through a temporary file in the same folder, renamed into place on success.

    Stale temporaries of ``path`` left by killed writers are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, umask_mode(0o666))  # mkstemp made it 0600
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``path``; rename it into place on success.

    Nothing at ``path`` looks complete until the body has finished. With ``overwrite`` an existing
    directory is replaced only after the new one is complete. Stale temporaries of ``path`` left
    by killed writers are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
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
            fsync_directory(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
            fsync_directory(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
