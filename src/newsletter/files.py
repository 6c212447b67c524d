"""Writing files so that a crash or an error never leaves one half-written.

A file written here gets the mode a plain open() would give it: 0666 less the umask for a
new file (0644 under the usual 022), the mode it had for a file it replaces. Files that
hold subscribers' data (the database, the outbox, exports) pass private=True: 0600.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

PRIVATE_MODE = 0o600
_NEW_MODE = 0o666  # less the umask, as open() does


def write_atomic(path: Path, data: str | bytes, *, sync: bool = True, private: bool = False) -> int:
    """Write `data` to a temporary file beside `path`, then rename it into place.

    Readers see the old file or the new one, never a mix. Returns the size in bytes.
    sync=False skips the fsync, for many small files that matter less than speed.
    private=True makes the file readable by its owner only.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with _replacing(path, "wb", sync=sync, private=private) as handle:
        handle.write(payload)
    return len(payload)


@contextmanager
def atomic_text(path: Path, encoding: str = "utf-8", *, private: bool = False) -> Iterator[TextIO]:
    """A text file to stream into; it appears at `path` only when the block succeeds."""
    with _replacing(path, "w", private=private, encoding=encoding, newline="") as handle:
        yield handle


def read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    """Parse a TOML file; every way it can fail becomes `error` naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{path}: not found") from exc
    except IsADirectoryError as exc:
        raise error(f"{path}: is a folder, not a file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def os_problem(path: Path | str, exc: OSError) -> str:
    """One line for an operating-system error: the path (shortened) and what the system said."""
    where = exc.filename if exc.filename else path
    name = os.fsdecode(where) if isinstance(where, bytes) else str(where)
    return f"{shown(name, PATH_LIMIT)}: {os_reason(exc)}"


def os_reason(exc: OSError | RuntimeError) -> str:
    """What the system said of a path; Path.resolve() raises RuntimeError on a link loop."""
    if isinstance(exc, RuntimeError):
        return os.strerror(errno.ELOOP)
    return exc.strerror or str(exc)


PATH_LIMIT = 160  # a path in a message: past 255 bytes is no name, and one line is read


def shown(value: str | Path, limit: int = 80) -> str:
    """A name or value the user gave, as a message echoes it: one line, not too long.

    One longer than `limit` keeps its start and end around "..."; one holding a line break,
    a control or another invisible character is shown as Python's repr (quoted, escaped),
    so a problem stays one line and nothing reaches the terminal unseen.
    """
    text = _cut(str(value), limit)
    return text if text.isprintable() else repr(text)


def quoted(value: str | Path, limit: int = 80) -> str:
    """As shown(), always in quotes: 'spring update', 'a\\nb'."""
    return repr(_cut(str(value), limit))


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    return f"{text[:head]}...{text[len(text) - (limit - 3 - head) :]}"


@contextmanager
def _replacing(
    path: Path, mode: str, sync: bool = True, private: bool = False, **options: Any
) -> Iterator[Any]:
    """A temporary file beside `path`, synced and renamed over it if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path, PRIVATE_MODE if private else _NEW_MODE)
    try:
        if private:
            os.fchmod(fd, PRIVATE_MODE)
        else:
            kept = _existing_mode(path)
            if kept is not None:
                os.fchmod(fd, kept)
        with os.fdopen(fd, mode, **options) as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_beside(path: Path, mode: int) -> tuple[int, Path]:
    """Create a new hidden file next to `path` with `mode` (less the umask).

    Not tempfile.mkstemp: it always makes 0600 files, whatever the umask says.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary file name")


def _existing_mode(path: Path) -> int | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None


def new_folder_beside(target: Path, what: str) -> Path:
    """An empty hidden folder next to `target`, to fill and swap in (mkdir's mode, not 0700)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        folder = target.with_name(f".{target.name}.{secrets.token_hex(4)}.new")
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{target.parent}: no free name for a new {what} folder")
