"""The list: add, list, count and remove subscribers; who a send goes to.

`audience_where` is the one definition of a send's audience: the active subscribers, or
the active ones of a segment; the ledger's snapshot, the send plan and the dry run take
it from here, so they cannot disagree about who gets an issue.

An address that left (unsubscribed, bounced, complained) never comes back by accident: a
re-import updates names and tags but never reactivates it, and an erased address leaves a
one-way hash behind so that it cannot be imported again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select, update

from newsletter.audience.addresses import address_key, parse_mailbox
from newsletter.audience.erasure import erase as erase_address
from newsletter.audience.erasure import is_erased
from newsletter.audience.segments import normalize_tag, segment_filter
from newsletter.errors import SubscriberError
from newsletter.storage import (
    STATUSES,
    SubscriberStatus,
    in_list,
    now,
    stored,
    subscriber_tags,
    subscribers,
    transaction,
)

LEFT = ("unsubscribed", "bounced", "complained")  # statuses an import never undoes
# Columns that export writes for people to read; import does not take them back.
EXPORT_ONLY = ("created_at", "confirmed_at", "unsubscribed_at", "source")
PAGE = 1000


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str
    tags: tuple[str, ...]
    source: str
    fields: dict[str, Any]
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "status": self.status,
            "tags": list(self.tags),
            "source": self.source,
            "fields": self.fields,
            "created_at": iso_time(self.created_at),
            "confirmed_at": iso_time(self.confirmed_at),
            "unsubscribed_at": iso_time(self.unsubscribed_at),
        }


def iso_time(value: dt.datetime | None) -> str | None:
    """A stored time as ISO 8601 text in UTC, to the second."""
    return None if value is None else stored(value).isoformat(timespec="seconds")


def clean_name(name: str) -> str:
    """One line of printable text: a name travels into headers and HTML later."""
    if name.isprintable() and "  " not in name:
        return name.strip()[:300]
    return " ".join("".join(c if c.isprintable() else " " for c in name).split())[:300]


def check_status(value: str) -> str:
    status = value.strip().lower()
    if status not in STATUSES:
        raise ValueError(f"unknown status {value!r} (use one of {', '.join(STATUSES)})")
    return status


def check_tags(values: Iterable[str]) -> list[str]:
    return sorted({normalize_tag(v) for v in values if v.strip()})


# --- single subscribers ----------------------------------------------------------------------


def add_subscriber(
    engine: Engine,
    email: str,
    *,
    name: str = "",
    tags: Sequence[str] = (),
    status: str = "active",
    source: str = "cli",
) -> Subscriber:
    """Add one address; refuse one that is already there or that left the list.

    `email` may be a mailbox, "Ana Lima <ana@example.org>": its display name is the name
    unless `name` is given.
    """
    display_name, address = parse_mailbox(email)
    name = name or display_name
    try:
        tag_list = check_tags(tags)
        status = check_status(status)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from exc
    if status not in ("active", "pending"):
        raise SubscriberError("a new subscriber is active or pending")
    key = address_key(address)
    with transaction(engine) as conn:
        if is_erased(conn, address):
            raise SubscriberError(
                f"{address} was erased at the subscriber's request and cannot be added again"
            )
        existing = conn.execute(
            select(subscribers.c.status).where(subscribers.c.email_key == key)
        ).first()
        if existing is not None:
            if existing.status in LEFT:
                raise SubscriberError(
                    f"{address} is {existing.status}; only the subscriber can come back, "
                    "by subscribing again"
                )
            raise SubscriberError(f"{address} is already on the list ({existing.status})")
        stamp = now()
        inserted = conn.execute(
            insert(subscribers).values(
                email=address,
                email_key=key,
                name=clean_name(name),
                status=status,
                source=source,
                fields={},
                created_at=stamp,
                updated_at=stamp,
                confirmed_at=stamp if status == "active" else None,
            )
        ).inserted_primary_key
        assert inserted is not None
        new_id = inserted[0]
        if tag_list:
            conn.execute(
                insert(subscriber_tags), [{"subscriber_id": new_id, "tag": t} for t in tag_list]
            )
    found = get_subscriber(engine, address)
    assert found is not None
    return found


def get_subscriber(engine: Engine, email: str) -> Subscriber | None:
    with transaction(engine) as conn:
        row = conn.execute(
            select(subscribers).where(subscribers.c.email_key == _typed(email)[1])
        ).first()
        return _with_tags(conn, [row])[0] if row is not None else None


def get_subscriber_by_id(engine: Engine, subscriber_id: int) -> Subscriber | None:
    """The subscriber a signed link names (links carry the id, never the address)."""
    with transaction(engine) as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return _with_tags(conn, [row])[0] if row is not None else None


def remove_subscriber(engine: Engine, email: str, *, erase: bool = False) -> str:
    """Unsubscribe an address, or with erase=True delete its personal data for good."""
    address, key, problem = _typed(email)
    with transaction(engine) as conn:
        row = conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.status).where(
                subscribers.c.email_key == key
            )
        ).first()
        if row is None and problem is not None:
            raise problem
        if not erase:
            if row is None:
                raise SubscriberError(f"{address} is not on the list")
            if row.status in LEFT:
                return f"{row.email} was already {row.status}"
            stamp = now()
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == row.id)
                .values(status="unsubscribed", unsubscribed_at=stamp, updated_at=stamp)
            )
            return f"{row.email} unsubscribed"
        if row is None and is_erased(conn, address):
            return f"{address} was already erased"
        erase_address(conn, address, key, row.id if row is not None else None)
        return f"{address} erased; a one-way hash keeps it from being added again"


def _typed(text: str) -> tuple[str, str, SubscriberError | None]:
    """(address, key, problem) of an address typed to find a subscriber.

    A mailbox with a display name is fine. An address today's checks refuse still finds
    a row stored under it (older versions may have let it in); `problem` says why it was
    refused, for when nobody is found.
    """
    try:
        address = parse_mailbox(text)[1]
    except SubscriberError as exc:
        return text.strip(), address_key(text), exc
    return address, address_key(address), None


# --- reading the list ----------------------------------------------------------------------


def _status_clause(status: str) -> ColumnElement[bool]:
    """The WHERE clause for one status; SubscriberError names the statuses there are."""
    try:
        return subscribers.c.status == check_status(status)
    except ValueError as exc:
        raise SubscriberError(str(exc)) from exc


def _filters(
    conn: Connection, status: str | None, segment: str | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if status:
        where.append(_status_clause(status))
    if segment:
        where.append(segment_filter(conn, segment))
    return where


def audience_where(conn: Connection, segment: str) -> list[ColumnElement[bool]]:
    """Who gets a send: active subscribers, or those of the segment ("" is the whole list).

    The one definition of a send's audience: the ledger snapshots it, the dry run and the
    plan count it. A segment naming a tag nobody has raises SubscriberError.
    """
    return _filters(conn, SubscriberStatus.ACTIVE, segment)


def count_audience(engine: Engine, segment: str) -> int:
    """How many subscribers a send to `segment` ("" for the whole list) would go to."""
    with transaction(engine) as conn:
        return _count(conn, audience_where(conn, segment))


def _count(conn: Connection, where: Sequence[ColumnElement[bool]]) -> int:
    return int(conn.scalar(select(func.count()).select_from(subscribers).where(*where)) or 0)


def iter_subscribers(
    engine: Engine, *, status: str | None = None, segment: str | None = None
) -> Iterator[Subscriber]:
    """Every matching subscriber, a page at a time, so memory stays flat on any list."""
    with transaction(engine) as conn:
        where = _filters(conn, status, segment)
    return _pages(engine, where)


def iter_audience(engine: Engine, segment: str) -> Iterator[Subscriber]:
    """The subscribers of `audience_where`, a page at a time."""
    with transaction(engine) as conn:
        where = audience_where(conn, segment)
    return _pages(engine, where)


def _pages(engine: Engine, where: Sequence[ColumnElement[bool]]) -> Iterator[Subscriber]:
    last = 0
    while True:
        with transaction(engine) as conn:
            rows = conn.execute(
                select(subscribers)
                .where(subscribers.c.id > last, *where)
                .order_by(subscribers.c.id)
                .limit(PAGE)
            ).all()
            page = _with_tags(conn, rows)
        if not page:
            return
        yield from page
        last = page[-1].id


def _with_tags(conn: Connection, rows: Sequence[Any]) -> list[Subscriber]:
    tags: dict[int, list[str]] = {}
    if rows:
        pairs = conn.execute(
            select(subscriber_tags.c.subscriber_id, subscriber_tags.c.tag)
            .where(in_list(conn, subscriber_tags.c.subscriber_id, [r.id for r in rows]))
            .order_by(subscriber_tags.c.tag)
        )
        for subscriber_id, tag in pairs:
            tags.setdefault(subscriber_id, []).append(tag)
    return [
        Subscriber(
            id=r.id,
            email=r.email,
            name=r.name,
            status=r.status,
            tags=tuple(tags.get(r.id, ())),
            source=r.source,
            fields=dict(r.fields or {}),
            created_at=r.created_at,
            confirmed_at=r.confirmed_at,
            unsubscribed_at=r.unsubscribed_at,
        )
        for r in rows
    ]


def count_subscribers(
    engine: Engine,
    *,
    by: str | None = None,
    status: str | None = None,
    segment: str | None = None,
) -> dict[str, int]:
    """Counts: the total, or per status, or per tag."""
    with transaction(engine) as conn:
        where = _filters(conn, status, segment)
        if by is None:
            return {"total": _count(conn, where)}
        if by == "status":
            query = select(subscribers.c.status, func.count()).where(*where)
            rows = conn.execute(query.group_by(subscribers.c.status)).all()
            counts = {s: 0 for s in STATUSES}
            counts.update({status: int(n) for status, n in rows})
            return counts
        if by == "tag":
            query = (
                select(subscriber_tags.c.tag, func.count())
                .join(subscribers, subscribers.c.id == subscriber_tags.c.subscriber_id)
                .where(*where)
                .group_by(subscriber_tags.c.tag)
                .order_by(subscriber_tags.c.tag)
            )
            return {tag: int(n) for tag, n in conn.execute(query)}
    raise SubscriberError(f"--by takes status or tag, not {by!r}")
