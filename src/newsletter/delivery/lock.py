"""One sender per issue on SQLite: a second one is refused, not interleaved.

PostgreSQL needs no such lock: its senders share the work through row claims.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.errors import SendError


@contextlib.contextmanager
def sender_lock(settings: Settings, engine: Engine, issue: str) -> Iterator[None]:
    """Hold the issue's send lock (SQLite only) for the duration of the block."""
    if engine.dialect.name != "sqlite":
        yield
        return
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / f"send-{issue}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SendError(
                f"another newsletter send is working on {issue} ({holder}); wait for it to "
                "finish, or stop it (its batches in flight finish first)"
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
