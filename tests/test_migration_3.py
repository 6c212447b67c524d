"""Migration 3: address keys made with casefold() become the one normal form.

A database at schema 2 is filled as the old code filled it (email_key = email.casefold()),
upgraded, and read back: keys recomputed in every table, two subscribers who turn out to
be one person merged into the older, and the list then works by the new keys.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Table, insert, select

from newsletter.audience.addresses import address_key
from newsletter.audience.subscribers import get_subscriber, remove_subscriber
from newsletter.config import Settings
from newsletter.storage import (
    deliveries,
    engine_for,
    events,
    migrate,
    sends,
    subscriber_tags,
    subscribers,
)
from newsletter.storage.address_keys import key_v3

T = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)
ISSUE = "2026-11-26-welcome"


@pytest.fixture
def at_schema_2(db_settings: Settings) -> Iterator[Engine]:
    """An engine on a database that stopped at schema 2."""
    engine = engine_for(db_settings)
    migrate(engine, target=2)
    yield engine
    engine.dispose()


def add(conn: Connection, table: Table, **row: Any) -> None:
    conn.execute(insert(table).values(**row))


def subscriber(conn: Connection, id: int, email: str, **row: Any) -> None:
    """A subscriber as schema 2 stored one: the key case-folded."""
    values = dict(email_key=email.casefold(), name="", status="active", source="t", fields={})
    add(
        conn, subscribers, id=id, email=email, **{**values, "created_at": T, "updated_at": T, **row}
    )


def ledger(conn: Connection, email: str, state: str, **row: Any) -> None:
    key = row.pop("email_key", email.casefold())
    add(conn, deliveries, issue=ISSUE, email=email, email_key=key, name="", state=state,
        attempt=1, updated_at=T, **row)  # fmt: skip


def keys(engine: Engine, table: Table) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(table.c.email, table.c.email_key)).all())


def test_keys_take_the_normal_form_everywhere(at_schema_2: Engine) -> None:
    with at_schema_2.begin() as conn:
        subscriber(conn, 1, "Ana@Example.org")
        subscriber(conn, 2, "user@bücher.de", name="U")
        subscriber(conn, 3, "Straße@example.org")  # its old key was strasse@example.org
        add(conn, sends, issue=ISSUE, content_hash="c", provider="outbox", created_at=T)
        ledger(conn, "user@bücher.de", "sent", subscriber_id=2)
        ledger(conn, "gone@example.org", "sent", email_key="erased:" + "ab" * 32)
        add(conn, events, provider="postmark", event_key="pm-1", kind="bounce",
            email="X@BÜCHER.de", email_key="x@bücher.de", occurred_at=T, received_at=T,
            payload={})  # fmt: skip
    migrate(at_schema_2)

    assert keys(at_schema_2, subscribers) == {
        "Ana@Example.org": "ana@example.org",
        "user@bücher.de": "user@xn--bcher-kva.de",
        "Straße@example.org": "straße@example.org",
    }
    assert keys(at_schema_2, deliveries) == {
        "user@bücher.de": "user@xn--bcher-kva.de",
        "gone@example.org": "erased:" + "ab" * 32,
    }
    assert keys(at_schema_2, events) == {"X@BÜCHER.de": "x@xn--bcher-kva.de"}

    # The list now finds them by any spelling, and erasure reaches the ledger and events.
    assert get_subscriber(at_schema_2, "USER@xn--bcher-kva.de") is not None
    assert "erased" in remove_subscriber(at_schema_2, "user@xn--bcher-kva.de", erase=True)
    assert get_subscriber(at_schema_2, "user@bücher.de") is None
    with at_schema_2.connect() as conn:
        assert "bücher" not in " ".join(conn.scalars(select(deliveries.c.email)))


def test_two_subscribers_who_are_one_person_are_merged_into_the_older(
    at_schema_2: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with at_schema_2.begin() as conn:
        subscriber(conn, 10, "zoe@xn--bcher-kva.de", fields={"city": "Nelson"})
        subscriber(
            conn,
            11,
            "Zoe@bücher.de",
            name="Zoë",
            status="unsubscribed",
            unsubscribed_at=LATER,
            fields={"city": "Wellington", "lang": "mi"},
            created_at=LATER,
        )
        add(conn, subscriber_tags, subscriber_id=10, tag="news")
        add(conn, subscriber_tags, subscriber_id=11, tag="news")
        add(conn, subscriber_tags, subscriber_id=11, tag="events")
        add(conn, sends, issue=ISSUE, content_hash="c", provider="outbox", created_at=T)
        ledger(conn, "zoe@xn--bcher-kva.de", "pending", subscriber_id=10)
        ledger(conn, "Zoe@bücher.de", "sent", subscriber_id=11, provider_message_id="m-1")
    with caplog.at_level(logging.WARNING, logger="newsletter.storage.address_keys"):
        migrate(at_schema_2)

    with at_schema_2.connect() as conn:
        rows = conn.execute(select(subscribers)).all()
        tags = conn.scalars(select(subscriber_tags.c.tag).order_by("tag")).all()
        ledger_rows = conn.execute(select(deliveries)).all()
    assert [(r.id, r.email_key, r.name, r.status) for r in rows] == [
        (10, "zoe@xn--bcher-kva.de", "Zoë", "unsubscribed")  # left the list: stays left
    ]
    assert rows[0].fields == {"city": "Nelson", "lang": "mi"}
    assert rows[0].unsubscribed_at is not None
    assert tags == ["events", "news"]
    # The ledger keeps the row that was sent, so a resumed send does not mail Zoë again.
    assert [
        (r.state, r.email_key, r.subscriber_id, r.provider_message_id) for r in ledger_rows
    ] == [("sent", "zoe@xn--bcher-kva.de", 10, "m-1")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("subscriber 11" in m and "merged into 10" in m for m in messages), messages
    assert any("kept row" in m and "(sent)" in m for m in messages), messages
    assert not any("zoe" in m.lower() for m in messages)  # ids, never addresses


def test_a_key_another_row_is_leaving_is_free(at_schema_2: Engine) -> None:
    """Row 1 takes the key row 2 had until now; row 2's own new key is elsewhere."""
    with at_schema_2.begin() as conn:
        subscriber(conn, 1, "a@bücher.de")
        subscriber(conn, 2, "b@example.org", email_key="a@xn--bcher-kva.de")  # a stale key
    migrate(at_schema_2)
    assert keys(at_schema_2, subscribers) == {
        "a@bücher.de": "a@xn--bcher-kva.de",
        "b@example.org": "b@example.org",
    }


@pytest.mark.parametrize(
    "address",
    [
        "user@bücher.de",
        "USER@BÜCHER.DE",
        "Straße@x.org",
        "Jose\u0301@x.org",
        "AΣ@x.gr",
        "a@[1.2.3.4]",
        "x",
    ],
)
def test_frozen_key_is_todays_key(address: str) -> None:
    """Written the day migration 3 was: if address_key changes, add a migration 4+."""
    assert key_v3(address) == address_key(address)
