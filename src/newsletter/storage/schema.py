"""The tables the pipeline's queries are written against, and the values they hold.

These Table objects describe the schema as the latest migration leaves it; they never
create it (migrations.py does, from frozen SQL), and tests/test_migrations.py checks that
the two agree. Statuses and delivery states are enums so a typo is a NameError, and the
CHECK constraints are built from them.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)


def now() -> dt.datetime:
    """The time as every Time column stores it: aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def stored(value: dt.datetime) -> dt.datetime:
    """A Time column's value as read back: SQLite returns it without its zone (UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


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
    # audience.addresses.address_key (schema 3): one subscriber however the address is
    # capitalised or its domain spelt (bücher.de or xn--bcher-kva.de).
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
    # Only the rows still to send (migration 5): claims read it, answers never touch it.
    Index(
        "deliveries_pending",
        "issue",
        "id",
        sqlite_where=text("state = 'pending'"),
        postgresql_where=text("state = 'pending'"),
    ),
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
    # Migration 7: the issue the report was matched to in the ledger, and what it changed.
    Column("issue", String(200)),
    Column("outcome", String(200)),
    Index("events_email_key", "email_key"),
    Index("events_occurred_at", "occurred_at"),
)

# Double opt-in (migration 6): each confirmation email someone asked for on /subscribe,
# recorded before the answer, so a provider that is down delays the email but never
# loses it. The name and public topics asked for are applied when the link is used.
confirmations = Table(
    "confirmations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Id,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(300), nullable=False, default=""),
    Column("topics", JSON, nullable=False, default=list),
    Column("created_at", Time, nullable=False),
    Column("expires_at", Time, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Time),  # null once sent, or given up
    Column("sent_at", Time),
    Column("used_at", Time),
    Column("error", Text),
    Index("confirmations_subscriber", "subscriber_id", "created_at"),
    Index("confirmations_due", "next_attempt_at"),
)
