"""Storage: the list, the send ledger and provider events, through SQLAlchemy Core.

SQLite at .newsletter/newsletter.db by default (WAL, so readers never wait for a sender),
PostgreSQL when database.url says postgresql:// (psycopg 3, the `postgres` extra), where
several senders on several machines can share one ledger.

The schema is versioned by numbered migrations recorded in schema_migrations. Opening a
database brings it up to date; a database from a newer program is refused rather than
guessed at. A migration never changes once released: a later change is a new migration.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    any_,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from newsletter.config import Settings
from newsletter.errors import ConfigError, StorageError


class SubscriberStatus(StrEnum):
    """Where a subscriber stands; only ACTIVE ones are sent to."""

    PENDING = "pending"  # awaiting confirmation
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class DeliveryState(StrEnum):
    """A ledger row's state: one issue to one recipient.

    pending ──claim──▶ in_flight ──answer──▶ sent | failed | pending (retry later)
       ▲                  │
       └── release ───────┴─ no answer came back ──▶ uncertain ──(--retry-uncertain)──▶ pending
    """

    PENDING = "pending"  # still to send
    IN_FLIGHT = "in_flight"  # claimed by a sender; its request may be on the wire
    SENT = "sent"  # the provider accepted it
    FAILED = "failed"  # the provider refused it, or it failed after every retry
    SKIPPED = "skipped"  # left the list after the send started
    UNCERTAIN = "uncertain"  # the request went out and no answer came back


STATUSES = tuple(s.value for s in SubscriberStatus)
DELIVERY_STATES = tuple(s.value for s in DeliveryState)
# Integer in SQLite (so it is the rowid), BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")
Time = DateTime(timezone=True)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("applied_at", Time, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    # The address case-folded: one subscriber per address however it is capitalised.
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", String(300), nullable=False, default=""),
    Column("status", String(20), nullable=False),
    Column("source", String(200), nullable=False, default=""),
    Column("fields", JSON, nullable=False, default=dict),  # custom fields from imports
    Column("created_at", Time, nullable=False),
    Column("updated_at", Time, nullable=False),
    Column("confirmed_at", Time),
    Column("unsubscribed_at", Time),
    CheckConstraint(f"status IN {STATUSES!r}", name="subscribers_status"),
    Index("subscribers_status_id", "status", "id"),
)

subscriber_tags = Table(
    "subscriber_tags",
    metadata,
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("tag", String(100), primary_key=True),
    Index("subscriber_tags_tag", "tag", "subscriber_id"),
    sqlite_with_rowid=False,  # the key is the row: one B-tree less per tag
)

# Addresses erased at the subscriber's request, kept only as a one-way hash.
suppressions = Table(
    "suppressions",
    metadata,
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(50), nullable=False),
    Column("created_at", Time, nullable=False),
)

# One row per issue sent to the list: what was sent, to which audience.
sends = Table(
    "sends",
    metadata,
    Column("issue", String(200), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("segment", String(500), nullable=False, default=""),
    Column("provider", String(50), nullable=False),
    Column("audience", Integer, nullable=False, default=0),
    Column("created_at", Time, nullable=False),
    Column("finished_at", Time),
)

# The ledger: one row per issue and recipient, so a send resumes without duplicates.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("issue", String(200), ForeignKey("sends.issue"), nullable=False),
    Column("subscriber_id", Id, ForeignKey("subscribers.id", ondelete="SET NULL")),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("name", String(300), nullable=False, default=""),
    Column("state", String(20), nullable=False, default="pending"),
    Column("attempt", Integer, nullable=False, default=0),
    Column("attempt_id", String(64)),  # the claim that marked it in flight
    Column("claimed_at", Time),
    Column("provider_message_id", String(300)),
    Column("error", Text),
    Column("sent_at", Time),
    Column("updated_at", Time, nullable=False),
    UniqueConstraint("issue", "email_key", name="deliveries_issue_email"),
    CheckConstraint(f"state IN {DELIVERY_STATES!r}", name="deliveries_state"),
    Index("deliveries_issue_state", "issue", "state", "id"),
)

# What providers report back through webhooks: bounces, complaints, unsubscribes.
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(50), nullable=False),
    Column("event_key", String(300), nullable=False, unique=True),  # the provider's id
    Column("kind", String(30), nullable=False),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False),
    Column("provider_message_id", String(300)),
    Column("occurred_at", Time, nullable=False),
    Column("received_at", Time, nullable=False),
    Column("payload", JSON, nullable=False, default=dict),
    Column("applied_at", Time),
    Index("events_email_key", "email_key"),
)


# Each migration is a named function over literal SQL, frozen once released: editing a
# Table above never changes what an old database is migrated to. The SQL is what
# SQLAlchemy's CreateTable/CreateIndex printed for each dialect when the migration was
# written; a later change to the schema is a new migration, never an edit here.

_SCHEMA_MIGRATIONS = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL,
    name VARCHAR(100) NOT NULL,
    applied_at DATETIME NOT NULL,
    PRIMARY KEY (version)
)""",
    "postgresql": """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL,
    name VARCHAR(100) NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (version)
)""",
}

_INITIAL_SCHEMA = {
    "sqlite": [
        """
CREATE TABLE subscribers (
    id INTEGER NOT NULL,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    name VARCHAR(300) NOT NULL,
    status VARCHAR(20) NOT NULL,
    source VARCHAR(200) NOT NULL,
    fields JSON NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    confirmed_at DATETIME,
    unsubscribed_at DATETIME,
    PRIMARY KEY (id),
    CONSTRAINT subscribers_status
        CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
    UNIQUE (email_key)
)""",
        "CREATE INDEX subscribers_status_id ON subscribers (status, id)",
        """
CREATE TABLE subscriber_tags (
    subscriber_id INTEGER NOT NULL,
    tag VARCHAR(100) NOT NULL,
    PRIMARY KEY (subscriber_id, tag),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
) WITHOUT ROWID""",
        "CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag, subscriber_id)",
        """
CREATE TABLE suppressions (
    email_hash VARCHAR(64) NOT NULL,
    reason VARCHAR(50) NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (email_hash)
)""",
        """
CREATE TABLE sends (
    issue VARCHAR(200) NOT NULL,
    content_hash VARCHAR(64) NOT NULL,
    segment VARCHAR(500) NOT NULL,
    provider VARCHAR(50) NOT NULL,
    audience INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    finished_at DATETIME,
    PRIMARY KEY (issue)
)""",
        """
CREATE TABLE deliveries (
    id INTEGER NOT NULL,
    issue VARCHAR(200) NOT NULL,
    subscriber_id INTEGER,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    name VARCHAR(300) NOT NULL,
    state VARCHAR(20) NOT NULL,
    attempt INTEGER NOT NULL,
    attempt_id VARCHAR(64),
    claimed_at DATETIME,
    provider_message_id VARCHAR(300),
    error TEXT,
    sent_at DATETIME,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT deliveries_issue_email UNIQUE (issue, email_key),
    CONSTRAINT deliveries_state
        CHECK (state IN ('pending', 'in_flight', 'sent', 'failed', 'skipped')),
    FOREIGN KEY(issue) REFERENCES sends (issue),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL
)""",
        "CREATE INDEX deliveries_issue_state ON deliveries (issue, state, id)",
        """
CREATE TABLE events (
    id INTEGER NOT NULL,
    provider VARCHAR(50) NOT NULL,
    event_key VARCHAR(300) NOT NULL,
    kind VARCHAR(30) NOT NULL,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    provider_message_id VARCHAR(300),
    occurred_at DATETIME NOT NULL,
    received_at DATETIME NOT NULL,
    payload JSON NOT NULL,
    applied_at DATETIME,
    PRIMARY KEY (id),
    UNIQUE (event_key)
)""",
        "CREATE INDEX events_email_key ON events (email_key)",
    ],
    "postgresql": [
        """
CREATE TABLE subscribers (
    id BIGSERIAL NOT NULL,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    name VARCHAR(300) NOT NULL,
    status VARCHAR(20) NOT NULL,
    source VARCHAR(200) NOT NULL,
    fields JSON NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    confirmed_at TIMESTAMP WITH TIME ZONE,
    unsubscribed_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    CONSTRAINT subscribers_status
        CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
    UNIQUE (email_key)
)""",
        "CREATE INDEX subscribers_status_id ON subscribers (status, id)",
        """
CREATE TABLE subscriber_tags (
    subscriber_id BIGINT NOT NULL,
    tag VARCHAR(100) NOT NULL,
    PRIMARY KEY (subscriber_id, tag),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
)""",
        "CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag, subscriber_id)",
        """
CREATE TABLE suppressions (
    email_hash VARCHAR(64) NOT NULL,
    reason VARCHAR(50) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (email_hash)
)""",
        """
CREATE TABLE sends (
    issue VARCHAR(200) NOT NULL,
    content_hash VARCHAR(64) NOT NULL,
    segment VARCHAR(500) NOT NULL,
    provider VARCHAR(50) NOT NULL,
    audience INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (issue)
)""",
        """
CREATE TABLE deliveries (
    id BIGSERIAL NOT NULL,
    issue VARCHAR(200) NOT NULL,
    subscriber_id BIGINT,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    name VARCHAR(300) NOT NULL,
    state VARCHAR(20) NOT NULL,
    attempt INTEGER NOT NULL,
    attempt_id VARCHAR(64),
    claimed_at TIMESTAMP WITH TIME ZONE,
    provider_message_id VARCHAR(300),
    error TEXT,
    sent_at TIMESTAMP WITH TIME ZONE,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT deliveries_issue_email UNIQUE (issue, email_key),
    CONSTRAINT deliveries_state
        CHECK (state IN ('pending', 'in_flight', 'sent', 'failed', 'skipped')),
    FOREIGN KEY(issue) REFERENCES sends (issue),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL
)""",
        "CREATE INDEX deliveries_issue_state ON deliveries (issue, state, id)",
        """
CREATE TABLE events (
    id BIGSERIAL NOT NULL,
    provider VARCHAR(50) NOT NULL,
    event_key VARCHAR(300) NOT NULL,
    kind VARCHAR(30) NOT NULL,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    provider_message_id VARCHAR(300),
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    payload JSON NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    UNIQUE (event_key)
)""",
        "CREATE INDEX events_email_key ON events (email_key)",
    ],
}


def initial_schema(conn: Connection) -> None:
    """1: subscribers, tags, suppressions, sends, deliveries, events."""
    for statement in _INITIAL_SCHEMA[conn.dialect.name]:
        conn.exec_driver_sql(statement)


# The ledger used to mark a batch whose answer never came as still in flight, claimed at
# this time (dt.datetime(1970, 1, 1, tzinfo=UTC)); SQLAlchemy writes it to SQLite as text.
_LOST_CLAIM = {
    "sqlite": "'1970-01-01 00:00:00.000000'",
    "postgresql": "'1970-01-01 00:00:00+00'",
}

_DELIVERIES_WITH_UNCERTAIN = """
CREATE TABLE deliveries_new (
    id INTEGER NOT NULL,
    issue VARCHAR(200) NOT NULL,
    subscriber_id INTEGER,
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    name VARCHAR(300) NOT NULL,
    state VARCHAR(20) NOT NULL,
    attempt INTEGER NOT NULL,
    attempt_id VARCHAR(64),
    claimed_at DATETIME,
    provider_message_id VARCHAR(300),
    error TEXT,
    sent_at DATETIME,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT deliveries_issue_email UNIQUE (issue, email_key),
    CONSTRAINT deliveries_state
        CHECK (state IN ('pending', 'in_flight', 'sent', 'failed', 'skipped', 'uncertain')),
    FOREIGN KEY(issue) REFERENCES sends (issue),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE SET NULL
)"""

_DELIVERY_COLUMNS = (
    "id, issue, subscriber_id, email, email_key, name, state, attempt, attempt_id,"
    " claimed_at, provider_message_id, error, sent_at, updated_at"
)


def uncertain_deliveries(conn: Connection) -> None:
    """2: 'uncertain' becomes a delivery state; rows the old ledger marked lost take it."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE deliveries DROP CONSTRAINT deliveries_state")
        conn.exec_driver_sql(
            "ALTER TABLE deliveries ADD CONSTRAINT deliveries_state CHECK"
            " (state IN ('pending', 'in_flight', 'sent', 'failed', 'skipped', 'uncertain'))"
        )
    else:
        # SQLite cannot alter a CHECK constraint: rebuild the table as its documentation
        # says (https://www.sqlite.org/lang_altertable.html#otheralter). Foreign keys stay
        # on: no table refers to deliveries, so dropping it cascades nothing, and each
        # copied row is checked against sends and subscribers as it goes in.
        conn.exec_driver_sql(_DELIVERIES_WITH_UNCERTAIN)
        conn.exec_driver_sql(
            f"INSERT INTO deliveries_new ({_DELIVERY_COLUMNS})"
            f" SELECT {_DELIVERY_COLUMNS} FROM deliveries"
        )
        conn.exec_driver_sql("DROP TABLE deliveries")
        conn.exec_driver_sql("ALTER TABLE deliveries_new RENAME TO deliveries")
        conn.exec_driver_sql("CREATE INDEX deliveries_issue_state ON deliveries (issue, state, id)")
    conn.exec_driver_sql(
        "UPDATE deliveries SET state = 'uncertain'"
        f" WHERE state = 'in_flight' AND claimed_at = {_LOST_CLAIM[conn.dialect.name]}"
    )


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "subscribers, tags, suppressions, sends, deliveries, events", initial_schema),
    (2, "deliveries may be uncertain", uncertain_deliveries),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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


def engine_for(settings: Settings) -> Engine:
    """An engine for the workspace's database as it is: no migration runs (open_engine's job)."""
    url = engine_url(settings)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("database.url is not a database URL") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            settings.state_dir.mkdir(parents=True, exist_ok=True)
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


def migrate(engine: Engine, target: int | None = None) -> int:
    """Apply the migrations this database lacks, up to `target` (default: all of them).

    Refuses a database made by a newer program. Returns the version the database is at.
    """
    dialect = engine.dialect.name
    if dialect not in _SCHEMA_MIGRATIONS:
        raise ConfigError(f"newsletter keeps its data in SQLite or PostgreSQL, not {dialect}")
    goal = SCHEMA_VERSION if target is None else min(target, SCHEMA_VERSION)
    # Look first without locking, so that opening an up-to-date database never waits for
    # a writer (a long import holds SQLite's one write lock).
    with engine.connect() as conn:
        current = _schema_version(conn)
    if current < goal:
        with engine.begin() as conn:
            if dialect == "postgresql":
                # One process migrates at a time; the others wait, then find nothing to do.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(742001)")
            else:
                # pysqlite opens a transaction only before INSERT, UPDATE and DELETE, so each
                # CREATE or DROP would commit on its own; BEGIN makes a migration all or
                # nothing, and IMMEDIATE makes a second process wait here for the first.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            conn.exec_driver_sql(_SCHEMA_MIGRATIONS[dialect])
            current = _schema_version(conn)
            for version, name, apply in MIGRATIONS:
                if current < version <= goal:
                    apply(conn)
                    conn.execute(
                        insert(schema_migrations).values(
                            version=version, name=name, applied_at=now()
                        )
                    )
                    current = version
    # Raised outside the transaction, so that no connection outlives the error.
    if current > SCHEMA_VERSION:
        raise ConfigError(
            f"the database {safe_url(str(engine.url))} has schema version {current}, "
            f"newer than this program knows ({SCHEMA_VERSION}); upgrade newsletter"
        )
    return current


def _schema_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    return conn.scalar(select(func.max(schema_migrations.c.version))) or 0


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
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


def driver_sql(conn: Connection, sql: str) -> str:
    """SQL written with ? placeholders, in the driver's own style (psycopg wants %s).

    For the hot paths that hand plain tuples to the driver's executemany, skipping
    SQLAlchemy's conversion of every value.
    """
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def bind(conn: Connection, column: Column[Any], value: Any) -> Any:
    """A value as the driver stores it in this column (a datetime as SQLite text...)."""
    convert = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return convert(value) if convert is not None and value is not None else value


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def in_list(conn: Connection, column: Any, values: list[Any]) -> ColumnElement[bool]:
    """`column IN values` with the values as one parameter.

    SQLAlchemy renders a long IN list one bound parameter at a time, which dominated an
    import's CPU; SQLite reads the list from JSON and PostgreSQL takes an array instead.
    """
    if conn.dialect.name == "postgresql":
        return column == any_(literal(values, postgresql.ARRAY(column.type)))  # type: ignore[no-any-return]
    listed: Any = select(literal_column("value")).select_from(func.json_each(json.dumps(values)))
    return column.in_(listed)  # type: ignore[no-any-return]


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows through the driver's executemany, converting each column once.

    SQLAlchemy's executemany converts every value of every row through its type; an
    import inserts a million rows whose timestamps are all the same value, so here the
    conversion is done once for a shared value and the rows go to the driver as tuples.
    """
    if not rows:
        return
    names = list(rows[0])
    dialect = conn.dialect
    columns: list[list[Any]] = []
    for name in names:
        convert = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        values = [row[name] for row in rows]
        if convert is not None:
            first = values[0]
            if all(v is first for v in values):  # one timestamp shared by the whole chunk
                values = [convert(first) if first is not None else None] * len(values)
            else:
                values = [convert(v) if v is not None else None for v in values]
        columns.append(values)
    values = list(zip(*columns, strict=True))
    quote = dialect.identifier_preparer
    listed = ", ".join(quote.quote(n) for n in names)
    sql = (
        f"INSERT INTO {quote.format_table(table)} ({listed}) VALUES ({', '.join('?' * len(names))})"
    )
    conn.exec_driver_sql(driver_sql(conn, sql), values)


def insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert rows whose key is not there yet; returns the ones that were new."""
    if not rows:
        return []
    keys = [c.name for c in table.primary_key.columns]
    present = set()
    if len(keys) == 2:
        first_key = keys[0]
        found = conn.execute(
            select(*(table.c[k] for k in keys)).where(
                in_list(conn, table.c[first_key], list({r[first_key] for r in rows}))
            )
        )
        present = {tuple(f) for f in found}
    fresh = [r for r in rows if tuple(r[k] for k in keys) not in present]
    if not fresh:
        return []
    dialect = conn.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    conn.execute(module.insert(table).on_conflict_do_nothing(), fresh)
    return fresh
