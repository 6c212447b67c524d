"""Erasure at a subscriber's request: the personal data goes, a one-way hash stays.

The ledger and provider events keep their counts but lose the address; the hash keeps the
address from being added or imported again. Hashes made before schema 3 were of the
address case-folded and cannot be recomputed, so every check also tries the forms older
versions hashed (addresses.address_hashes).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select, update

from newsletter.audience.addresses import address_hash, address_hashes
from newsletter.storage import (
    deliveries,
    events,
    in_list,
    insert_ignore,
    now,
    subscriber_tags,
    subscribers,
    suppressions,
)


def is_erased(conn: Connection, address: str) -> bool:
    """Whether an erasure left this address's hash, today's or one an older version made."""
    return bool(erased_among(conn, address_hashes(address)))


def anyone_erased(conn: Connection) -> bool:
    """Whether any address was ever erased: until then an import need not hash at all."""
    return conn.scalar(select(suppressions.c.email_hash).limit(1)) is not None


def erased_among(conn: Connection, hashes: Iterable[str]) -> list[str]:
    """The hashes, of those given, that an erasure left behind."""
    column = suppressions.c.email_hash
    return list(conn.scalars(select(column).where(in_list(conn, column, list(hashes)))))


def erase(conn: Connection, address: str, key: str, subscriber_id: int | None) -> None:
    """Delete the subscriber (if there is one), strip the address from the ledger and
    provider events, and keep the hash."""
    if subscriber_id is not None:
        conn.execute(
            delete(subscriber_tags).where(subscriber_tags.c.subscriber_id == subscriber_id)
        )
        conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
    digest = address_hash(address)
    erased = f"erased:{digest}"
    conn.execute(
        update(deliveries)
        .where(deliveries.c.email_key == key)
        .values(email=erased, email_key=erased, name="", subscriber_id=None)
    )
    conn.execute(
        update(events)
        .where(events.c.email_key == key)
        .values(email=erased, email_key=erased, payload={})
    )
    insert_ignore(conn, suppressions, [
        {"email_hash": digest, "reason": "erased", "created_at": now()}
    ])  # fmt: skip
