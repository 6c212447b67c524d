"""Numbered migrations, recorded in schema_migrations, and migrate() that applies them.

Each migration is a named function over literal SQL that never changes once released (as
sqlite-utils does it): a migration built from today's Table objects would silently change
what an old database is migrated to. The SQL is what SQLAlchemy's CreateTable and
CreateIndex printed for each dialect when the migration was written. A later change to
the schema is a new migration here and a matching edit of schema.py.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, func, insert, inspect, select

from newsletter.errors import ConfigError
from newsletter.storage.address_keys import address_keys
from newsletter.storage.liveness import departures_table, senders_table
from newsletter.storage.schema import now, schema_migrations

# The table that records the others, made before anything can be recorded in it.
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

# Migration 1's ledger table on SQLite; migration 2 rebuilds it from this very text.
_SQLITE_DELIVERIES_1 = """
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
)"""

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
        _SQLITE_DELIVERIES_1,
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

# SQLite cannot alter a CHECK constraint, so migration 2 copies the table into this one.
_DELIVERIES_WITH_UNCERTAIN = _SQLITE_DELIVERIES_1.replace(
    "CREATE TABLE deliveries (", "CREATE TABLE deliveries_new ("
).replace("'failed', 'skipped')", "'failed', 'skipped', 'uncertain')")

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


def pending_index(conn: Connection) -> None:
    """5: index only the rows still to send.

    A send claims pending rows in id order and then changes each row's state twice;
    with the state in the index, both changes moved the row's index entry. A partial
    index holds just the pending rows: the claim takes them out, and recording the
    answer touches no index at all (about a third of the ledger's cost per message).
    """
    conn.exec_driver_sql("DROP INDEX deliveries_issue_state")
    conn.exec_driver_sql(
        "CREATE INDEX deliveries_pending ON deliveries (issue, id) WHERE state = 'pending'"
    )


# Migration 6's table, as CreateTable printed it for each dialect.
_CONFIRMATIONS = """
CREATE TABLE confirmations (
    id {id} NOT NULL,
    subscriber_id {ref} NOT NULL,
    name VARCHAR(300) NOT NULL,
    topics JSON NOT NULL,
    created_at {time} NOT NULL,
    expires_at {time} NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at {time},
    sent_at {time},
    used_at {time},
    error TEXT,
    PRIMARY KEY (id),
    FOREIGN KEY(subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE
)"""
_CONFIRMATION_TYPES = {
    "sqlite": {"id": "INTEGER", "ref": "INTEGER", "time": "DATETIME"},
    "postgresql": {"id": "BIGSERIAL", "ref": "BIGINT", "time": "TIMESTAMP WITH TIME ZONE"},
}


def confirmations_table(conn: Connection) -> None:
    """6: double opt-in requests, recorded before /subscribe answers."""
    conn.exec_driver_sql(_CONFIRMATIONS.format(**_CONFIRMATION_TYPES[conn.dialect.name]))
    conn.exec_driver_sql("CREATE INDEX confirmations_due ON confirmations (next_attempt_at)")
    conn.exec_driver_sql(
        "CREATE INDEX confirmations_subscriber ON confirmations (subscriber_id, created_at)"
    )


def event_outcomes(conn: Connection) -> None:
    """7: an event says which issue it was about and what it changed.

    What a report changed cannot be worked out later (the subscriber may have changed
    since, a soft bounce may or may not have been the one over the limit), so it is
    written when the event is applied, as one line for `newsletter events`.
    """
    conn.exec_driver_sql("ALTER TABLE events ADD COLUMN issue VARCHAR(200)")
    conn.exec_driver_sql("ALTER TABLE events ADD COLUMN outcome VARCHAR(200)")
    conn.exec_driver_sql("CREATE INDEX events_occurred_at ON events (occurred_at)")


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "subscribers, tags, suppressions, sends, deliveries, events", initial_schema),
    (2, "deliveries may be uncertain", uncertain_deliveries),
    (3, "address keys in one normal form", address_keys),
    (4, "senders register themselves", senders_table),
    (5, "the ledger indexes only the rows still to send", pending_index),
    (6, "confirmation requests of double opt-in", confirmations_table),
    (7, "events say which issue they were about and what they changed", event_outcomes),
    (8, "a batch on the wire is noted once, not on each of its rows", departures_table),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


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
        url = engine.url.render_as_string(hide_password=True)
        raise ConfigError(
            f"the database {url} has schema version {current}, "
            f"newer than this program knows ({SCHEMA_VERSION}); upgrade newsletter"
        )
    return current


def _schema_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_migrations"):
        return 0
    return conn.scalar(select(func.max(schema_migrations.c.version))) or 0
