"""Storage: the list, the send ledger and provider events, through SQLAlchemy Core.

Shared ground below every pipeline stage, in four parts that change for different reasons:

    schema.py       the tables the queries are written against; statuses and states as enums
    migrations.py   numbered migrations over frozen SQL, and migrate() that applies them
    database.py     opening the database (SQLite or PostgreSQL), transaction(), a held connection
    bulk.py         bulk SQL for imports and the hot paths (ledger claims, one-clicks)

Opening a database brings its schema up to date; a database from a newer program is
refused rather than guessed at. Import the names from here, not from the parts.
"""

from newsletter.storage.bulk import (
    IN_LIST,
    bind,
    bulk_insert,
    driver_rows,
    driver_sql,
    in_list,
    insert_ignore,
    list_param,
)
from newsletter.storage.database import (
    Database,
    HeldConnection,
    checkpoint,
    engine_for,
    engine_url,
    open_engine,
    safe_url,
    transaction,
)
from newsletter.storage.liveness import departures, senders
from newsletter.storage.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from newsletter.storage.schema import (
    DELIVERY_STATES,
    STATUSES,
    DeliveryState,
    Id,
    SubscriberStatus,
    Time,
    confirmations,
    deliveries,
    events,
    metadata,
    now,
    schema_migrations,
    sends,
    stored,
    subscriber_tags,
    subscribers,
    suppressions,
)

__all__ = [
    "DELIVERY_STATES",
    "IN_LIST",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Database",
    "DeliveryState",
    "HeldConnection",
    "Id",
    "SubscriberStatus",
    "Time",
    "bind",
    "bulk_insert",
    "checkpoint",
    "confirmations",
    "deliveries",
    "driver_rows",
    "driver_sql",
    "engine_for",
    "engine_url",
    "events",
    "in_list",
    "insert_ignore",
    "list_param",
    "metadata",
    "migrate",
    "now",
    "stored",
    "open_engine",
    "safe_url",
    "schema_migrations",
    "senders",
    "departures",
    "sends",
    "subscriber_tags",
    "subscribers",
    "suppressions",
    "transaction",
]
