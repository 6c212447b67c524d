"""Storage's promises to the rest of the pipeline: its names, and errors a user can read.

Every database failure is one line for the user, chained to the driver's error so that
--debug shows the SQL underneath.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

import newsletter.storage
from newsletter.config import Settings
from newsletter.errors import ConfigError, StorageError
from newsletter.storage import (
    HeldConnection,
    checkpoint,
    now,
    open_engine,
    sends,
    transaction,
)

# What the pipeline imported from newsletter.storage when it was one module; it still can.
NAMES = """
    DELIVERY_STATES MIGRATIONS SCHEMA_VERSION STATUSES DeliveryState Id SubscriberStatus
    Time bind bulk_insert deliveries driver_sql engine_url events in_list insert_ignore
    metadata migrate now open_engine safe_url schema_migrations sends subscriber_tags
    subscribers suppressions transaction
""".split()


def test_every_public_name_is_importable_from_the_package() -> None:
    assert set(NAMES) <= set(newsletter.storage.__all__)
    for name in newsletter.storage.__all__:
        assert getattr(newsletter.storage, name) is not None, name


def test_a_refused_statement_is_a_storage_error_with_its_cause(engine: Engine) -> None:
    row = dict(issue="x", content_hash="h", provider="outbox", created_at=now())
    with transaction(engine) as conn:
        conn.execute(insert(sends).values(row))
    with pytest.raises(StorageError, match=r"^database error: .*(UNIQUE|unique)") as info:
        with transaction(engine) as conn:
            conn.execute(insert(sends).values(row))
    assert isinstance(info.value.__cause__, DBAPIError)
    assert "\n" not in str(info.value)


def test_unreachable_database_chains_the_driver_error(settings: Settings) -> None:
    bad = dataclasses.replace(settings, database_url="postgresql://u:pw@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match="cannot open the database") as info:
        open_engine(bad)
    assert isinstance(info.value.__cause__, OperationalError)


def test_a_url_that_is_no_url_is_a_config_error(settings: Settings) -> None:
    bad = dataclasses.replace(settings, database_url="not a url")
    with pytest.raises(ConfigError, match="^database.url is not a database URL$") as info:
        open_engine(bad)
    assert isinstance(info.value.__cause__, ArgumentError)


def test_a_held_connection_is_reused_by_transactions_until_one_fails(engine: Engine) -> None:
    held = HeldConnection(engine)
    row = dict(issue="held", content_hash="h", provider="outbox", created_at=now())
    with transaction(held) as first:
        first.execute(insert(sends).values(row))
    with transaction(held) as second:
        assert second is first  # kept open: no pool round trip for the next group
        assert second.execute(select(sends.c.issue)).scalars().all() == ["held"]
    with pytest.raises(StorageError, match=r"^database error: .*(UNIQUE|unique)"):
        with transaction(held) as conn:
            conn.execute(insert(sends).values(dict(row, provider="second")))
    assert first.closed  # a connection whose transaction failed is not kept
    with transaction(held) as third:
        assert third is not first
        # The failed transaction was rolled back; the first commit stands.
        assert third.execute(select(sends.c.provider)).scalars().all() == ["outbox"]
    held.close()
    assert third.closed
    held.close()  # twice is harmless (the app's shutdown after a failed start)


def test_a_connection_that_must_not_wait_fails_at_once_on_a_locked_database(
    settings: Settings,
) -> None:
    engine = open_engine(settings)  # SQLite: the lock is the database file's
    other = sqlite3.connect(engine.url.database or "", isolation_level=None)
    held = HeldConnection(engine, wait=False)
    row = dict(issue="x", content_hash="h", provider="outbox", created_at=now())
    try:
        with transaction(held) as first:
            pass
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StorageError, match="locked"):
            with transaction(held) as conn:
                conn.execute(insert(sends).values(row))
        assert time.monotonic() - started < 2  # not the 30 s every other connection waits
        other.execute("ROLLBACK")
        with transaction(held) as conn:
            assert conn is first  # only the lock was taken: the connection was kept
            conn.execute(insert(sends).values(row))
        held.close()
        # Its settings left with it: the pool hands out connections that still wait.
        with engine.connect() as pooled:
            assert pooled.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert pooled.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        held.close()
        other.close()
        engine.dispose()


def test_what_a_connection_that_must_not_wait_wrote_is_checkpointed_elsewhere(
    settings: Settings,
) -> None:
    engine = open_engine(settings)
    held, writer = HeldConnection(engine, wait=False), HeldConnection(engine)
    try:
        for n in range(50):
            with transaction(held) as conn:
                row = dict(issue=f"i{n}", content_hash="h" * 500, provider="outbox")
                conn.execute(insert(sends).values(dict(row, created_at=now())))
        with transaction(held) as conn:  # its commits left the whole log in place
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        database = Path(engine.url.database or "")
        before = database.stat().st_size  # the rows are still only in the log
        checkpoint(writer)
        assert database.stat().st_size >= before + 50 * 500  # copied into the file
    finally:
        held.close()
        writer.close()
        engine.dispose()


def test_a_held_connection_refuses_a_second_thread_at_once(engine: Engine) -> None:
    held = HeldConnection(engine)
    seen: list[BaseException] = []
    with transaction(held):
        thread = threading.Thread(target=lambda: _use(held, seen))
        thread.start()
        thread.join(10)
    assert len(seen) == 1 and "two threads at once" in str(seen[0])
    with transaction(held) as conn:  # and free again afterwards
        assert conn.execute(select(sends.c.issue)).all() == []
    held.close()


def _use(held: HeldConnection, seen: list[BaseException]) -> None:
    try:
        with transaction(held):
            pass
    except RuntimeError as exc:
        seen.append(exc)
