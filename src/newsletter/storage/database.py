"""Opening the database and running one transaction, with errors the user can read.

SQLite at .newsletter/newsletter.db by default (WAL, so readers never wait for a sender),
PostgreSQL when database.url says postgresql:// (psycopg 3, the `postgres` extra), where
several senders on several machines can share one ledger. Database failures become one
line (ConfigError when the database cannot be reached, StorageError for a statement)
chained to the driver's error, which --debug shows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from newsletter.config import Settings
from newsletter.errors import ConfigError, StorageError
from newsletter.storage.migrations import migrate


def engine_url(settings: Settings) -> str:
    """postgresql:// means psycopg 3 here; SQLAlchemy alone would pick psycopg2."""
    url = settings.database_url
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable database URL)"


def open_engine(settings: Settings) -> Engine:
    """An engine for the workspace's database, with its schema brought up to date."""
    engine = engine_for(settings)
    try:
        migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        raise ConfigError(
            f"cannot open the database {safe_url(str(engine.url))}: {_first_line(exc)}"
        ) from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def _private_database(path: Path, state_dir: Path) -> None:
    """The list is personal data: .newsletter/ is 0700, the database and the WAL and
    journal files SQLite makes beside it (it gives them the database's mode) are 0600."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.parent.resolve() == state_dir.resolve():
            state_dir.chmod(0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for made in (path, *path.parent.glob(path.name + "-*")):
            if made.is_file() and made.stat().st_mode & 0o077:
                made.chmod(0o600)
    except OSError as exc:
        raise StorageError(f"cannot create the database {path}: {exc.strerror}") from exc


def engine_for(settings: Settings) -> Engine:
    """An engine for the workspace's database as it is: no migration runs (open_engine's job)."""
    url = engine_url(settings)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("database.url is not a database URL") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_database(Path(parsed.database), settings.state_dir)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=_json_text)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, json_serializer=_json_text)
    except ModuleNotFoundError as exc:
        raise ConfigError("PostgreSQL needs psycopg: pip install 'newsletter[postgres]'") from exc


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class HeldConnection:
    """One connection kept open for a thread that commits many small transactions (the
    writer of `serve`), for `transaction()` to use in place of the engine's pool.

    Taking a connection from the pool and handing it back (which rolls it back) for each
    group of one-click unsubscribes cost about as much as the group's UPDATE. A
    transaction that fails closes the connection (the next one opens another), unless it
    failed only because another writer held the lock. For SQLite: a PostgreSQL
    connection held this way would miss the pool's check that it is still alive. One
    thread at a time: a second one at once is refused, not let through.

    `wait=False` (SQLite): a transaction that would wait for another writer's lock fails
    at once instead ("database is locked"), for a caller that has better things to do
    than wait (the event loop; see web.group_commit). Its commits also never copy the
    log back into the database file, which can take a while: `checkpoint()` does that
    from elsewhere. The connection leaves the pool for good, so its settings never
    reach anyone else.
    """

    def __init__(self, engine: Engine, *, wait: bool = True) -> None:
        self.engine = engine
        self.wait = wait
        self._conn: Connection | None = None
        self._using = threading.Lock()

    def _open(self) -> Connection:
        conn = self.engine.connect()
        if not self.wait and conn.dialect.name == "sqlite":
            conn.detach()
            raw = conn.connection.dbapi_connection
            raw.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
            raw.execute("PRAGMA wal_autocheckpoint = 0")  # type: ignore[union-attr]
        return conn

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        if not self._using.acquire(blocking=False):
            raise RuntimeError("a HeldConnection is used by two threads at once")
        try:
            conn = self._conn or self._open()
            self._conn = None
            try:
                with conn.begin():
                    yield conn
            except BaseException as exc:
                if _locked(exc) and not conn.invalidated:
                    self._conn = conn  # rolled back and sound: only the lock was taken
                else:
                    conn.close()
                raise
            self._conn = conn
        finally:
            self._using.release()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


# Where a transaction's connection comes from: the engine's pool, or one held open.
Database = Engine | HeldConnection


@contextmanager
def transaction(engine: Database) -> Iterator[Connection]:
    """One transaction; database errors become one clear StorageError line."""
    try:
        with engine.begin() as conn:
            yield conn
    except OperationalError as exc:
        if "locked" in str(exc).lower():
            raise StorageError(
                "the database is locked by another newsletter process; try again when it ends"
            ) from exc
        raise StorageError(f"database error: {_first_line(exc)}") from exc
    except DBAPIError as exc:
        raise StorageError(f"database error: {_first_line(exc)}") from exc


def checkpoint(database: Database) -> None:
    """SQLite: copy the write-ahead log back into the database file, as far as readers
    allow, without waiting for anyone (PASSIVE). For the log HeldConnection(wait=False)
    writes and leaves; nothing to do on PostgreSQL."""
    with transaction(database) as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
