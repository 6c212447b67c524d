"""Who is sending: one row per running `newsletter send`, so that senders know each other;
and which of their batches have left: one row per batch whose request went out.

A sender's rows in the ledger carry its id at the head of their attempt id. Whether it is
alive is asked of the database itself, never of a clock on another machine: on SQLite
(one machine) by a heartbeat a few seconds old; on PostgreSQL by a session advisory lock
the sender holds, which the server releases the moment the process or its machine dies.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Index, Integer, String, Table

from newsletter.storage.schema import Time, metadata

senders = Table(
    "senders",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("issue", String(200), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Time, nullable=False),
    Column("heartbeat_at", Time, nullable=False),
    Index("senders_issue", "issue"),
)

_SENDERS_TABLE_SQLITE = """
CREATE TABLE senders (
    id VARCHAR(40) NOT NULL,
    issue VARCHAR(200) NOT NULL,
    host VARCHAR(255) NOT NULL,
    pid INTEGER NOT NULL,
    started_at DATETIME NOT NULL,
    heartbeat_at DATETIME NOT NULL,
    PRIMARY KEY (id)
)"""


def _each_dialect(sqlite: str) -> dict[str, str]:
    """A table's DDL as written for SQLite, and for PostgreSQL (times keep their zone)."""
    return {"sqlite": sqlite, "postgresql": sqlite.replace("DATETIME", "TIMESTAMP WITH TIME ZONE")}


_SENDERS_TABLE = _each_dialect(_SENDERS_TABLE_SQLITE)


def senders_table(conn: Connection) -> None:
    """Senders register themselves, so liveness comes from the database, not a lease."""
    conn.exec_driver_sql(_SENDERS_TABLE[conn.dialect.name])
    conn.exec_driver_sql("CREATE INDEX senders_issue ON senders (issue)")


# A batch whose request has left (delivery.ledger.on_the_wire): one row per batch, where a
# column on each of its rows cost every message of a send one more UPDATE of its row.
departures = Table(
    "departures",
    metadata,
    Column("attempt_id", String(64), primary_key=True),
    Column("issue", String(200), nullable=False),
    Column("departed_at", Time, nullable=False),
)

_DEPARTURES_TABLE_SQLITE = """
CREATE TABLE departures (
    attempt_id VARCHAR(64) NOT NULL,
    issue VARCHAR(200) NOT NULL,
    departed_at DATETIME NOT NULL,
    PRIMARY KEY (attempt_id)
)"""
_DEPARTURES_TABLE = _each_dialect(_DEPARTURES_TABLE_SQLITE)


def departures_table(conn: Connection) -> None:
    """A batch on the wire is noted once, in its own row, not on each of its rows (rows
    already noted, through deliveries.claimed_at, keep saying so)."""
    conn.exec_driver_sql(_DEPARTURES_TABLE[conn.dialect.name])
