"""What providers report back: bounces, complaints and unsubscribes become statuses.

A provider's webhook arrives as `Report`s (one per event and address, in the provider's
words already turned into ours by web/webhooks). `record_reports` stores every one of
them in `events` and applies the new ones, all in one transaction:

    bounce        → bounced        (a hard bounce: the address does not exist)
    complaint     → complained     (the reader pressed "this is spam")
    unsubscribe   → unsubscribed   (the reader left through the provider's own link)
    soft_bounce   → counted; bounced once `limit` of them fall within `days`
    other         → stored, changes nothing (delivered, opened, delayed...)

Only an active or pending subscriber changes: an address that left stays as it left,
and nothing here ever brings one back. A report whose event_key is already stored is
a replay (providers retry) and changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, text, tuple_, update

from newsletter.audience.addresses import address_key
from newsletter.audience.subscribers import iso_time
from newsletter.storage import (
    Database,
    Time,
    bulk_insert,
    deliveries,
    events,
    now,
    subscribers,
    transaction,
)


class Kind(StrEnum):
    """What a provider's event means for the list, in our words."""

    BOUNCE = "bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    OTHER = "other"


# The status each kind of report leaves a subscriber in.
LEAVES_AS = {
    Kind.BOUNCE: "bounced",
    Kind.SOFT_BOUNCE: "bounced",
    Kind.COMPLAINT: "complained",
    Kind.UNSUBSCRIBE: "unsubscribed",
}
STILL_ON_THE_LIST = ("active", "pending")


@dataclass(frozen=True)
class Report:
    """One event a provider reported about one address."""

    provider: str
    event_key: str  # unique per provider event: a replay carries the same key
    kind: Kind
    email: str
    occurred_at: dt.datetime
    label: str = ""  # the provider's own name for the event, for people to read
    message_id: str = ""  # the provider's id of the message, as its webhook gives it
    issue: str = ""  # the issue named in the metadata the send put in
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SoftBounces:
    """How many soft bounces within how many days make an address bounced."""

    limit: int
    days: int


@dataclass(frozen=True)
class Outcome:
    """What recording one report did: `new` is False for a replay."""

    event_key: str
    kind: str
    new: bool
    change: str


@dataclass(frozen=True)
class Event:
    """A stored event, as `newsletter events` lists it."""

    occurred_at: dt.datetime
    provider: str
    kind: str
    email: str
    issue: str
    outcome: str

    def as_json(self) -> dict[str, Any]:
        return {
            "occurred_at": iso_time(self.occurred_at),
            "provider": self.provider,
            "kind": self.kind,
            "email": self.email,
            "issue": self.issue,
            "outcome": self.outcome,
        }


def record_reports(engine: Engine, reports: Sequence[Report], soft: SoftBounces) -> list[Outcome]:
    """Store the reports and apply the new ones, in one transaction (a whole batch or
    nothing); returns one outcome per report, in order."""
    return record_report_groups(engine, [reports], soft=soft)[0]


def record_report_groups(
    engine: Database, groups: Sequence[Sequence[Report]], *, soft: SoftBounces
) -> list[list[Outcome]]:
    """The reports of several webhook requests in one transaction (serve commits the
    requests of a moment together); for each group, its outcomes as record_reports
    gives them. A report replayed by a later group is "already recorded" there, as it
    would be had the groups come one after the other."""
    flat = [report for group in groups for report in group]
    with transaction(engine) as conn:
        outcomes = _record(conn, flat, soft, now()) if flat else []
    answers, start = [], 0
    for group in groups:
        answers.append(outcomes[start : start + len(group)])
        start += len(group)
    return answers


# Built once: a webhook request runs each of them, and building a statement costs
# SQLAlchemy more than running it. Lists go in as one expanding parameter each.
_STORED = select(events.c.event_key).where(
    events.c.event_key.in_(bindparam("keys", expanding=True))
)
_PEOPLE = select(subscribers.c.id, subscribers.c.email_key, subscribers.c.status).where(
    subscribers.c.email_key.in_(bindparam("keys", expanding=True))
)
_IN_LEDGER = select(deliveries.c.issue, deliveries.c.email_key).where(
    tuple_(deliveries.c.issue, deliveries.c.email_key).in_(bindparam("pairs", expanding=True))
)
_SOFT_SO_FAR = (
    select(events.c.email_key, func.count())
    .where(
        events.c.email_key.in_(bindparam("keys", expanding=True)),
        events.c.kind == str(Kind.SOFT_BOUNCE),
        events.c.occurred_at >= bindparam("since", type_=Time),
    )
    .group_by(events.c.email_key)
)
# (As SQL text: a Python list would be an expanding parameter, which executemany refuses.)
_STILL_ON = (subscribers.c.id == bindparam("b_id"), text("status IN ('active', 'pending')"))
# A bounce changes the status; leaving (unsubscribe, complaint) also records when.
_BOUNCE = (
    update(subscribers)
    .where(*_STILL_ON)
    .values(status=bindparam("b_status"), updated_at=bindparam("b_stamp", type_=Time))
)
_LEAVE = _BOUNCE.values(unsubscribed_at=bindparam("b_when", type_=Time))


def _record(
    conn: Connection, reports: Sequence[Report], soft: SoftBounces, stamp: dt.datetime
) -> list[Outcome]:
    keys = list(dict.fromkeys(r.event_key for r in reports))
    stored = set(conn.scalars(_STORED, {"keys": keys}))
    fresh: dict[str, tuple[Report, str]] = {}
    for report in reports:
        if report.event_key not in stored and report.event_key not in fresh:
            fresh[report.event_key] = (report, address_key(report.email))
    people = _subscribers(conn, fresh.values())
    issues = _ledger_matches(conn, fresh.values())
    counts = _soft_bounces(conn, fresh.values(), soft, stamp)
    changes: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    done: dict[str, str] = {}
    for key, (report, person_key) in fresh.items():
        change, leaves = _apply(report, person_key, people, counts, soft)
        if leaves:
            person = people[person_key]
            changes[person_key] = {
                "b_id": person["id"],
                "b_status": leaves,
                "b_stamp": stamp,
                "b_when": report.occurred_at,
            }
            people[person_key] = {**person, "status": leaves}
        done[key] = change
        rows.append(
            {
                "provider": report.provider,
                "event_key": key,
                "kind": str(report.kind),
                "email": report.email[:320],
                "email_key": person_key[:320],
                "provider_message_id": report.message_id[:300] or None,
                "occurred_at": report.occurred_at,
                "received_at": stamp,
                "payload": report.payload,
                "applied_at": stamp if leaves else None,
                "issue": issues.get((report.issue, person_key)),
                "outcome": change[:200],
            }
        )
    bulk_insert(conn, events, rows)
    leaving = [c for c in changes.values() if c["b_status"] in ("unsubscribed", "complained")]
    bouncing = [c for c in changes.values() if c["b_status"] not in ("unsubscribed", "complained")]
    for statement, values in ((_LEAVE, leaving), (_BOUNCE, bouncing)):
        if values:
            conn.execute(statement, values)
    outcomes = []
    seen: set[str] = set()
    for report in reports:
        key = report.event_key
        new = key in done and key not in seen
        seen.add(key)
        outcomes.append(
            Outcome(key, str(report.kind), new, done[key] if new else "already recorded")
        )
    return outcomes


def _apply(
    report: Report,
    key: str,
    people: dict[str, dict[str, Any]],
    counts: dict[str, int],
    soft: SoftBounces,
) -> tuple[str, str | None]:
    """(what the report changes, in words; the status it leaves the subscriber in)."""
    if report.kind is Kind.OTHER:
        return f"no change ({report.label or 'not a bounce or complaint'})", None
    person = people.get(key)
    if report.kind is Kind.SOFT_BOUNCE:
        counts[key] = counts.get(key, 0) + 1
        tally = f"soft bounce {counts[key]} of {soft.limit} in {soft.days} days"
        if counts[key] < soft.limit or person is None or person["status"] not in STILL_ON_THE_LIST:
            return tally if person is not None else f"{tally}; not on the list", None
        return f"{person['status']} → bounced ({tally})", "bounced"
    if person is None:
        return "not on the list", None
    if person["status"] not in STILL_ON_THE_LIST:
        return f"no change (already {person['status']})", None
    leaves = LEAVES_AS[report.kind]
    return f"{person['status']} → {leaves}", leaves


Fresh = Iterable[tuple[Report, str]]  # a new report and its address key


def _subscribers(conn: Connection, fresh: Fresh) -> dict[str, dict[str, Any]]:
    keys = list({key for report, key in fresh if report.kind is not Kind.OTHER})
    if not keys:
        return {}
    found = conn.execute(_PEOPLE, {"keys": keys})
    return {row.email_key: {"id": row.id, "status": row.status} for row in found}


def _ledger_matches(conn: Connection, fresh: Fresh) -> dict[tuple[str, str], str]:
    """The (issue, address key) pairs of these reports that the ledger holds: the send
    put the issue in the message's metadata, and the ledger has one row per issue and
    address (its unique index answers this)."""
    pairs = list({(report.issue, key) for report, key in fresh if report.issue})
    if not pairs:
        return {}
    found = conn.execute(_IN_LEDGER, {"pairs": pairs})
    return {(row.issue, row.email_key): row.issue for row in found}


def _soft_bounces(
    conn: Connection, fresh: Fresh, soft: SoftBounces, stamp: dt.datetime
) -> dict[str, int]:
    """Soft bounces already stored for these addresses within the window."""
    keys = list({key for report, key in fresh if report.kind is Kind.SOFT_BOUNCE})
    if not keys:
        return {}
    since = stamp - dt.timedelta(days=soft.days)
    found = conn.execute(_SOFT_SO_FAR, {"keys": keys, "since": since})
    return {row[0]: int(row[1]) for row in found}


def list_events(engine: Engine, since: dt.datetime | None = None) -> list[Event]:
    """Stored events, newest first; those before `since` left out."""
    query = select(
        events.c.occurred_at,
        events.c.provider,
        events.c.kind,
        events.c.email,
        events.c.issue,
        events.c.outcome,
    ).order_by(events.c.occurred_at.desc(), events.c.id.desc())
    if since is not None:
        query = query.where(events.c.occurred_at >= since)
    with transaction(engine) as conn:
        return [
            Event(r.occurred_at, r.provider, r.kind, r.email, r.issue or "", r.outcome or "")
            for r in conn.execute(query)
        ]


__all__ = [
    "Event",
    "Kind",
    "Outcome",
    "Report",
    "SoftBounces",
    "list_events",
    "record_report_groups",
    "record_reports",
]
