"""A subscriber's own say: subscribing (double opt-in), confirming, leaving, choosing topics.

What the public pages change goes through here, so the list's rules hold for them as they
do for the editor's commands:

- an address joins as pending and becomes active only through a confirmation request
  that it was sent (`request_subscription`, then `confirm`);
- nobody learns from the outcome whether an address is on the list: the web answer is the
  same whichever way it went, and `request_subscription` only says whether to send mail;
- an active address gets no second confirmation email; a bounced, complained or erased
  one gets none at all; an address that left may come back, through confirmation;
- at most PER_ADDRESS_DAY confirmation emails per address a day, PER_ADDRESS_GAP apart,
  counted in the database, so the limit holds across workers and machines;
- topics are the workspace's public tags: a subscriber's other tags are never touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from newsletter.audience.addresses import address_key, check_address
from newsletter.audience.erasure import is_erased
from newsletter.audience.subscribers import Subscriber, clean_name, get_subscriber_by_id
from newsletter.errors import SubscriberError
from newsletter.storage import (
    IN_LIST,
    Database,
    SubscriberStatus,
    bind,
    confirmations,
    driver_rows,
    list_param,
    now,
    stored,
    subscriber_tags,
    subscribers,
    transaction,
)

PER_ADDRESS_DAY = 3
PER_ADDRESS_GAP = dt.timedelta(minutes=5)
# Statuses a confirmation may (re)activate: a new address, or one that left by itself.
MAY_CONFIRM = (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)
STILL_ON = (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING)


class Confirmed(StrEnum):
    """What became of a confirmation link."""

    ACTIVE = "active"  # the address is active now (or already was, by this very link)
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # no such request: used, cancelled, or its subscriber erased
    REFUSED = "refused"  # the address bounced or complained since: it stays off the list


class Left(StrEnum):
    """What became of an unsubscribe."""

    UNSUBSCRIBED = "unsubscribed"
    ALREADY = "already"  # had left before (unsubscribed, bounced, complained)
    UNKNOWN = "unknown"  # no such subscriber (erased)


@dataclass(frozen=True)
class ConfirmationRequest:
    """A confirmation email to send: the request's id, and where it goes."""

    id: int
    email: str
    name: str
    expires_at: dt.datetime


def public_choice(chosen: Sequence[str], public: Collection[str]) -> list[str]:
    """The chosen topics, each once; SubscriberError for one that is not a public topic."""
    unknown = [t for t in chosen if t not in public]
    if unknown:
        raise SubscriberError(f"{unknown[0]!r} is not a topic of this newsletter")
    return sorted(set(chosen))


def request_subscription(
    engine: Engine,
    email: str,
    *,
    name: str = "",
    topics: Sequence[str] = (),
    public_topics: Collection[str] = (),
    valid_for: dt.timedelta,
) -> ConfirmationRequest | None:
    """Record a confirmation request for `email`, or None when no email should go.

    A new address is added as pending (source "web") with its name and topics; for one
    that is pending or left, the name and topics wait in the request until it is used.
    SubscriberError for an address that is not one, or a topic that is not public.
    """
    address = check_address(email)
    chosen = public_choice(topics, public_topics)
    try:
        return _request(engine, address, clean_name(name), chosen, valid_for)
    except IntegrityError:
        # Two requests for one new address at once: the other inserted it first.
        return _request(engine, address, clean_name(name), chosen, valid_for)


def request_return(
    engine: Engine, subscriber_id: int, *, valid_for: dt.timedelta
) -> ConfirmationRequest | None:
    """A subscriber who left asks to come back (the goodbye page): through confirmation."""
    found = get_subscriber_by_id(engine, subscriber_id)
    if found is None:
        return None
    return _request(engine, found.email, found.name, None, valid_for)


def _request(
    engine: Engine,
    address: str,
    name: str,
    topics: list[str] | None,
    valid_for: dt.timedelta,
) -> ConfirmationRequest | None:
    stamp = now()
    with transaction(engine) as conn:
        if is_erased(conn, address):
            return None
        row = conn.execute(
            select(subscribers.c.id, subscribers.c.status, subscribers.c.name).where(
                subscribers.c.email_key == address_key(address)
            )
        ).first()
        if row is None:
            subscriber_id = _add_pending(conn, address, name, topics or [], stamp)
        elif row.status not in MAY_CONFIRM or _too_soon(conn, row.id, stamp):
            return None
        else:
            subscriber_id = row.id
            name = name or row.name
        expires = stamp + valid_for
        new_id = conn.execute(
            insert(confirmations).values(
                subscriber_id=subscriber_id,
                name=name,
                topics=topics,
                created_at=stamp,
                expires_at=expires,
                attempts=0,
                next_attempt_at=stamp,
            )
        ).inserted_primary_key
        assert new_id is not None
        return ConfirmationRequest(new_id[0], address, name, expires)


def _add_pending(
    conn: Connection, address: str, name: str, topics: list[str], stamp: dt.datetime
) -> int:
    inserted = conn.execute(
        insert(subscribers).values(
            email=address,
            email_key=address_key(address),
            name=name,
            status=SubscriberStatus.PENDING,
            source="web",
            fields={},
            created_at=stamp,
            updated_at=stamp,
        )
    ).inserted_primary_key
    assert inserted is not None
    if topics:
        conn.execute(
            insert(subscriber_tags), [{"subscriber_id": inserted[0], "tag": t} for t in topics]
        )
    return int(inserted[0])


def _too_soon(conn: Connection, subscriber_id: int, stamp: dt.datetime) -> bool:
    """Whether this address has had its confirmation emails for now."""
    count, latest = conn.execute(
        select(func.count(), func.max(confirmations.c.created_at)).where(
            confirmations.c.subscriber_id == subscriber_id,
            confirmations.c.created_at > stamp - dt.timedelta(days=1),
        )
    ).one()
    if count >= PER_ADDRESS_DAY:
        return True
    return latest is not None and stored(latest) > stamp - PER_ADDRESS_GAP


def confirm(
    engine: Engine, confirmation_id: int, *, public_topics: Collection[str] = ()
) -> Confirmed:
    """Use a confirmation request: its subscriber becomes active, with the name and the
    public topics it asked for."""
    stamp = now()
    with transaction(engine) as conn:
        row = conn.execute(
            select(
                confirmations.c.subscriber_id,
                confirmations.c.name,
                confirmations.c.topics,
                confirmations.c.expires_at,
                confirmations.c.used_at,
                confirmations.c.created_at,
                subscribers.c.status,
                subscribers.c.unsubscribed_at,
            )
            .join(subscribers, subscribers.c.id == confirmations.c.subscriber_id)
            .where(confirmations.c.id == confirmation_id)
        ).first()
        if row is None:
            return Confirmed.UNKNOWN
        if row.used_at is not None:
            # The same link pressed twice: the first press did it.
            return Confirmed.ACTIVE if row.status == SubscriberStatus.ACTIVE else Confirmed.UNKNOWN
        if voided_by_leaving(row.created_at, row.unsubscribed_at):
            return Confirmed.UNKNOWN
        if stored(row.expires_at) <= stamp:
            return Confirmed.EXPIRED
        if row.status not in (*MAY_CONFIRM, SubscriberStatus.ACTIVE):
            return Confirmed.REFUSED
        # This link and every other one not yet used: one confirmation is enough.
        conn.execute(
            update(confirmations)
            .where(
                confirmations.c.subscriber_id == row.subscriber_id,
                confirmations.c.used_at.is_(None),
            )
            .values(used_at=stamp, next_attempt_at=None)
        )
        if row.status == SubscriberStatus.ACTIVE:
            return Confirmed.ACTIVE
        values: dict[str, Any] = {
            "status": SubscriberStatus.ACTIVE,
            "confirmed_at": stamp,
            "unsubscribed_at": None,
            "updated_at": stamp,
        }
        if row.name:
            values["name"] = row.name
        where = subscribers.c.id == row.subscriber_id
        conn.execute(update(subscribers).where(where).values(values))
        if row.topics is not None:
            chosen = [t for t in row.topics if t in public_topics]
            _set_topics(conn, row.subscriber_id, chosen, public_topics)
        return Confirmed.ACTIVE


# Plain SQL on the driver's cursor (storage.driver_rows): RFC 8058 one-click runs them for
# every request, and SQLAlchemy's rendering of an IN list and its result object cost more
# than SQLite takes to run them. RETURNING says which rows each one changed (SQLite 3.35
# and later, PostgreSQL). `{ids}` is storage.IN_LIST; the ids go in as one parameter.
_LEAVE = (
    "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?, updated_at = ?"
    " WHERE id {ids} AND status IN ('active', 'pending') RETURNING id"
)
# Asked to leave again: that is the latest word, later than any link to come back.
_LEAVE_AGAIN = "UPDATE subscribers SET unsubscribed_at = ? WHERE id {ids} RETURNING id"


def unsubscribe(engine: Engine, subscriber_id: int) -> Left:
    """The subscriber leaves.

    Confirmation links asked for before this moment stop working without being touched:
    `confirm` refuses a request older than the subscriber's last unsubscribe, and the
    mailer does not send one.
    """
    return unsubscribe_many(engine, [subscriber_id])[0]


def unsubscribe_many(engine: Database, subscriber_ids: Sequence[int]) -> list[Left]:
    """Several subscribers leave in one transaction: what `serve` gathers from the
    one-click requests of a moment, so that a thousand a second are a few commits.

    One UPDATE for all on the way that matters; a second only for those it did not
    change, to say why. One Left per id, in order; an id given twice leaves with its first.
    """
    if not subscriber_ids:
        return []
    with transaction(engine) as conn:
        ids = list(dict.fromkeys(subscriber_ids))
        stamp = bind(conn, subscribers.c.updated_at, now())
        listed = IN_LIST[conn.dialect.name]
        leave = _LEAVE.format(ids=listed)
        left = {row[0] for row in driver_rows(conn, leave, (stamp, stamp, list_param(conn, ids)))}
        rest = [i for i in ids if i not in left]
        already = set()
        if rest:
            again = _LEAVE_AGAIN.format(ids=listed)
            already = {row[0] for row in driver_rows(conn, again, (stamp, list_param(conn, rest)))}
    answers = []
    for subscriber_id in subscriber_ids:
        if subscriber_id in left:
            answers.append(Left.UNSUBSCRIBED)
            left.discard(subscriber_id)
            already.add(subscriber_id)  # the same id again in this group
        elif subscriber_id in already:
            answers.append(Left.ALREADY)
        else:
            answers.append(Left.UNKNOWN)
    return answers


def voided_by_leaving(created_at: dt.datetime, unsubscribed_at: dt.datetime | None) -> bool:
    """Whether the subscriber left after this confirmation request was made."""
    return unsubscribed_at is not None and stored(unsubscribed_at) >= stored(created_at)


def set_choices(
    engine: Engine,
    subscriber_id: int,
    *,
    name: str,
    topics: Sequence[str],
    public_topics: Collection[str],
) -> Subscriber | None:
    """Change a subscriber's name and public topics (their other tags stay as they are).

    None for a subscriber who is not there (erased); SubscriberError for a topic that is
    not public.
    """
    chosen = public_choice(topics, public_topics)
    with transaction(engine) as conn:
        changed = conn.execute(
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(name=clean_name(name), updated_at=now())
        ).rowcount
        if not changed:
            return None
        _set_topics(conn, subscriber_id, chosen, set(public_topics))
    return get_subscriber_by_id(engine, subscriber_id)


def _set_topics(
    conn: Connection, subscriber_id: int, chosen: list[str], public: Collection[str]
) -> None:
    """The subscriber's tags among `public` become exactly `chosen`."""
    dropped = [t for t in public if t not in chosen]
    if dropped:
        conn.execute(
            delete(subscriber_tags).where(
                subscriber_tags.c.subscriber_id == subscriber_id,
                subscriber_tags.c.tag.in_(dropped),
            )
        )
    have = set(
        conn.scalars(
            select(subscriber_tags.c.tag).where(subscriber_tags.c.subscriber_id == subscriber_id)
        )
    )
    fresh = [t for t in chosen if t not in have]
    if fresh:
        conn.execute(
            insert(subscriber_tags), [{"subscriber_id": subscriber_id, "tag": t} for t in fresh]
        )
