"""Migrations: a database made by any earlier version upgrades to exactly the new schema.

Each migration is frozen SQL, so these tests build a database at every earlier version,
put rows in, upgrade it, and compare what SQLAlchemy's inspector sees with a database
created today, and that one with the Table definitions the queries are written against.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Table, delete, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from newsletter.config import Settings
from newsletter.errors import ConfigError
from newsletter.storage import (
    DELIVERY_STATES,
    MIGRATIONS,
    SCHEMA_VERSION,
    DeliveryState,
    deliveries,
    engine_for,
    events,
    metadata,
    migrate,
    open_engine,
    schema_migrations,
    sends,
    subscriber_tags,
    subscribers,
    suppressions,
)

# How the ledger before migration 2 marked a batch whose answer never came.
OLD_LOST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
T = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)
ISSUE = "2026-11-26-welcome"


@pytest.fixture
def bare(db_settings: Settings) -> Iterator[Engine]:
    """An engine on an empty database: no migration has run."""
    engine = engine_for(db_settings)
    yield engine
    engine.dispose()


def wipe(engine: Engine) -> None:
    """Drop everything, so the same database can be created again another way."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        return
    engine.dispose()
    assert engine.url.database
    for suffix in ("", "-wal", "-shm"):
        Path(engine.url.database + suffix).unlink(missing_ok=True)


def schema_of(engine: Engine) -> dict[str, Any]:
    """Everything the inspector reports about each table, in a comparable form."""
    tables: dict[str, Any] = {}
    with engine.connect() as conn:
        seen = inspect(conn)
        for table in sorted(seen.get_table_names()):
            checks = seen.get_check_constraints(table)
            tables[table] = {
                "columns": [
                    (c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                    for c in seen.get_columns(table)
                ],
                "primary_key": seen.get_pk_constraint(table),
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in seen.get_unique_constraints(table)
                ),
                "foreign_keys": sorted(
                    (
                        f["name"] or "",
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        tuple(f["referred_columns"]),
                        sorted(f["options"].items()),
                    )
                    for f in seen.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in seen.get_indexes(table)
                ),
                "checks": sorted((c["name"], " ".join(c["sqltext"].split())) for c in checks),
                "without_rowid": _without_rowid(conn, table),
            }
    return tables


def _without_rowid(conn: Connection, table: str) -> bool | None:
    if conn.dialect.name != "sqlite":
        return None
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    return bool(sql.rstrip().upper().endswith("WITHOUT ROWID"))


def seed(conn: Connection, version: int) -> None:
    """Rows of every kind, as the program at `version` wrote them."""
    add(
        conn,
        subscribers,
        id=1,
        email="Ana@example.org",
        email_key="ana@example.org",
        name="Ana",
        status="active",
        source="import",
        fields={"city": "Lisboa"},
        created_at=T,
        updated_at=T,
        confirmed_at=T,
    )
    add(
        conn,
        subscribers,
        id=2,
        email="bo@example.org",
        email_key="bo@example.org",
        status="unsubscribed",
        created_at=T,
        updated_at=T,
        unsubscribed_at=T,
    )
    add(conn, subscriber_tags, subscriber_id=1, tag="news")
    add(conn, subscriber_tags, subscriber_id=2, tag="x")
    add(conn, suppressions, email_hash="ab" * 32, reason="erased", created_at=T)
    add(
        conn, sends, issue=ISSUE, content_hash="c" * 64, provider="outbox", audience=5, created_at=T
    )
    add(
        conn,
        deliveries,
        **ledger_row("sent@example.org", "sent"),
        subscriber_id=1,
        provider_message_id="m-1",
        sent_at=T,
    )
    add(conn, deliveries, **ledger_row("pending@example.org", "pending"))
    add(
        conn,
        deliveries,
        **ledger_row("failed@example.org", "failed"),
        error="422: inactive recipient",
    )
    add(
        conn,
        deliveries,
        **ledger_row("flying@example.org", "in_flight"),
        attempt_id="a2",
        claimed_at=T,
    )
    if version < 2:
        add(
            conn,
            deliveries,
            **ledger_row("lost@example.org", "in_flight"),
            attempt_id="a1",
            claimed_at=OLD_LOST,
            error="uncertain: the sender died",
        )
    add(conn, events, provider="postmark", event_key="pm-1", kind="bounce",
        email="x@example.org", email_key="x@example.org", occurred_at=T, received_at=T,
        payload={"Type": "Hard"})  # fmt: skip


def add(conn: Connection, table: Table, **row: Any) -> None:
    conn.execute(insert(table).values(**row))


def ledger_row(email: str, state: str) -> dict[str, Any]:
    return dict(issue=ISSUE, email=email, email_key=email, state=state, attempt=1, updated_at=T)


def versions(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(select(schema_migrations.c.version).order_by("version")))


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
def test_older_database_upgrades_to_the_fresh_schema(bare: Engine, start: int) -> None:
    assert migrate(bare, target=start) == start
    assert versions(bare) == list(range(1, start + 1))
    with bare.begin() as conn:
        seed(conn, start)
    assert migrate(bare) == SCHEMA_VERSION
    assert versions(bare) == list(range(1, SCHEMA_VERSION + 1))
    upgraded = schema_of(bare)

    with bare.connect() as conn:
        ledger = {r.email: r for r in conn.execute(select(deliveries).order_by(deliveries.c.id))}
        assert conn.scalar(select(subscribers.c.fields).where(subscribers.c.id == 1)) == {
            "city": "Lisboa"
        }
        assert conn.execute(select(subscriber_tags.c.tag).order_by("tag")).scalars().all() == [
            "news",
            "x",
        ]
        assert conn.scalar(select(suppressions.c.reason)) == "erased"
        assert conn.scalar(select(events.c.payload)) == {"Type": "Hard"}
    assert {email: r.state for email, r in ledger.items()} == {
        "sent@example.org": "sent",
        "pending@example.org": "pending",
        "failed@example.org": "failed",
        "flying@example.org": "in_flight",  # claimed at a real time: still someone's batch
        **({"lost@example.org": "uncertain"} if start < 2 else {}),
    }
    assert [r.id for r in ledger.values()] == list(range(1, len(ledger) + 1))
    assert ledger["sent@example.org"].provider_message_id == "m-1"
    assert ledger["failed@example.org"].error == "422: inactive recipient"
    assert ledger["flying@example.org"].claimed_at.replace(tzinfo=dt.UTC) == T
    if start < 2:
        lost = ledger["lost@example.org"]
        assert (lost.attempt_id, lost.error) == ("a1", "uncertain: the sender died")

    # The rebuilt ledger keeps its constraints and foreign-key actions.
    with pytest.raises(IntegrityError):
        with bare.begin() as conn:
            conn.execute(insert(deliveries).values(ledger_row("bogus@example.org", "bogus")))
    with bare.begin() as conn:
        conn.execute(insert(deliveries).values(ledger_row("new@example.org", "uncertain")))
        conn.execute(delete(subscribers).where(subscribers.c.id == 1))
        assert conn.scalar(select(deliveries.c.id).where(deliveries.c.email == "new@example.org"))
        assert (
            conn.scalar(
                select(deliveries.c.subscriber_id).where(deliveries.c.email == "sent@example.org")
            )
            is None
        )
        assert conn.execute(select(subscriber_tags.c.tag)).scalars().all() == ["x"]

    wipe(bare)
    migrate(bare)
    assert upgraded == schema_of(bare)


def test_fresh_schema_is_what_the_tables_declare(bare: Engine) -> None:
    """The Table objects the queries use describe the migrated database exactly."""
    migrate(bare)
    migrated = schema_of(bare)
    wipe(bare)
    metadata.create_all(bare)
    assert migrated == schema_of(bare)
    assert migrated["subscriber_tags"]["without_rowid"] in (True, None)
    assert DELIVERY_STATES == tuple(DeliveryState)


def test_migrate_goes_forward_only(bare: Engine) -> None:
    assert migrate(bare, target=1) == 1
    assert migrate(bare) == SCHEMA_VERSION
    assert migrate(bare, target=1) == SCHEMA_VERSION  # never downgrades
    assert versions(bare) == list(range(1, SCHEMA_VERSION + 1))


def test_newer_database_refused(bare: Engine, db_settings: Settings) -> None:
    migrate(bare)
    with bare.begin() as conn:
        conn.execute(insert(schema_migrations).values(version=99, name="future", applied_at=T))
    message = (
        r"the database .* has schema version 99, newer than this program knows "
        rf"\({SCHEMA_VERSION}\); upgrade newsletter"
    )
    with pytest.raises(ConfigError, match=message):
        open_engine(db_settings)
    with pytest.raises(ConfigError, match=message):
        migrate(bare)


def failing(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
    raise RuntimeError("migration broke")


def test_failed_migration_changes_nothing(bare: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """All the migrations a database lacks apply in one transaction, or none does."""
    migrations = MIGRATIONS
    patch(monkeypatch, [*migrations[:1], (2, "broken", failing)])
    with pytest.raises(RuntimeError, match="migration broke"):
        migrate(bare)
    assert inspect(bare).get_table_names() == []

    patch(monkeypatch, migrations)
    migrate(bare)
    patch(monkeypatch, [*migrations, (SCHEMA_VERSION + 1, "broken", failing)])
    with pytest.raises(RuntimeError, match="migration broke"):
        migrate(bare)
    assert "half_done" not in inspect(bare).get_table_names()
    assert versions(bare) == list(range(1, SCHEMA_VERSION + 1))


def patch(
    monkeypatch: pytest.MonkeyPatch,
    migrations: list[tuple[int, str, Callable[[Connection], None]]],
) -> None:
    # migrate() reads the registry from its own module.
    monkeypatch.setattr("newsletter.storage.migrations.MIGRATIONS", migrations)
    monkeypatch.setattr("newsletter.storage.migrations.SCHEMA_VERSION", migrations[-1][0])
