"""The send ledger: one row per issue and recipient, so a send resumes without duplicates.

    pending ──claim──▶ in_flight ──answer──▶ sent | failed | pending (retry later)
                          │
                          └─ the process died before the answer was written: "uncertain"

A batch is claimed (marked in flight with an attempt id) before the HTTP call and its
answer written after it, each in its own transaction. Claims are one UPDATE over a
subquery that skips rows other senders hold (FOR UPDATE SKIP LOCKED on PostgreSQL), so
several senders never share a row. A row left in flight longer than the lease is
uncertain: it may or may not have been sent, and is resent only when asked to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from newsletter.audience.segments import segment_filter
from newsletter.delivery.providers import SendResult, Status
from newsletter.errors import NewsletterError
from newsletter.storage import (
    bind,
    deliveries,
    driver_sql,
    now,
    sends,
    subscribers,
    transaction,
)

# Rows whose answer never came back are dated here, so that every reader sees them as
# uncertain at once, whatever its lease.
LOST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Claimed:
    """A ledger row claimed for one attempt."""

    id: int
    subscriber_id: int
    email: str
    name: str
    attempt: int


# The ledger columns a Claimed is made of, in its field order.
CLAIMED_COLUMNS = (
    deliveries.c.id,
    deliveries.c.subscriber_id,
    deliveries.c.email,
    deliveries.c.name,
    deliveries.c.attempt,
)


def _claimed(row: Any) -> Claimed:
    return Claimed(row.id, row.subscriber_id, row.email, row.name, row.attempt)


@dataclass(frozen=True)
class SendRecord:
    issue: str
    content_hash: str
    segment: str
    provider: str
    audience: int
    created: bool  # this run took the snapshot


@dataclass
class LedgerStatus:
    issue: str
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    exists: bool = True

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "counts": self.counts,
            "failed": [{"email": e, "error": r} for e, r in self.failed],
            "uncertain": self.uncertain,
        }


def audience_query(segment: str, conn: Connection) -> Any:
    """Active subscribers, or those of the segment."""
    where = [subscribers.c.status == "active"]
    if segment:
        where.append(segment_filter(conn, segment))
    return where


def count_audience(engine: Engine, segment: str) -> int:
    with transaction(engine) as conn:
        where = audience_query(segment, conn)
        return int(conn.scalar(select(func.count()).select_from(subscribers).where(*where)) or 0)


def find_send(engine: Engine, issue: str) -> SendRecord | None:
    with transaction(engine) as conn:
        row = conn.execute(select(sends).where(sends.c.issue == issue)).first()
    if row is None:
        return None
    return SendRecord(row.issue, row.content_hash, row.segment, row.provider, row.audience, False)


def start_send(
    engine: Engine,
    issue: str,
    content_hash: str,
    *,
    segment: str,
    provider: str,
    allow_changed: bool = False,
) -> SendRecord:
    """Snapshot the audience into the ledger on an issue's first send; check it after."""
    with transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Senders starting together: one takes the snapshot, the others then find it.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:issue))"), {"issue": issue})
        row = conn.execute(select(sends).where(sends.c.issue == issue)).first()
        if row is not None:
            if row.segment != segment:
                started = (
                    f"with --segment {row.segment!r}; run it again with that segment"
                    if row.segment
                    else "for the whole list; run it again without --segment"
                )
                raise NewsletterError(f"this issue's send started {started}")
            if row.content_hash != content_hash:
                if not allow_changed:
                    raise NewsletterError(
                        f"the issue changed since its send started ({row.content_hash[:12]} → "
                        f"{content_hash[:12]}); the rest of the list would get another email "
                        "than the first part. Undo the change, or pass --allow-changed"
                    )
                conn.execute(
                    update(sends).where(sends.c.issue == issue).values(content_hash=content_hash)
                )
            return SendRecord(issue, content_hash, segment, row.provider, row.audience, False)
        where = audience_query(segment, conn)
        stamp = now()
        conn.execute(
            insert(sends).values(
                issue=issue,
                content_hash=content_hash,
                segment=segment,
                provider=provider,
                audience=0,
                created_at=stamp,
            )
        )
        snapshot = select(
            literal(issue),
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.email_key,
            subscribers.c.name,
            literal("pending"),
            literal(0),
            literal(stamp, type_=deliveries.c.updated_at.type),
        ).where(*where)
        conn.execute(
            insert(deliveries).from_select(
                [
                    "issue",
                    "subscriber_id",
                    "email",
                    "email_key",
                    "name",
                    "state",
                    "attempt",
                    "updated_at",
                ],
                snapshot,
            )
        )
        audience = int(
            conn.scalar(
                select(func.count()).select_from(deliveries).where(deliveries.c.issue == issue)
            )
            or 0
        )
        conn.execute(update(sends).where(sends.c.issue == issue).values(audience=audience))
    return SendRecord(issue, content_hash, segment, provider, audience, True)


@dataclass(frozen=True)
class _Taken:
    id: int
    subscriber_id: int
    email: str
    name: str
    attempt: int
    status: str | None
    current_name: str | None


def _now_as(current: dict[int, Any], taken: Any) -> tuple[str | None, str | None]:
    row = current.get(taken.subscriber_id)
    return (row.status, row.name) if row is not None else (None, None)


def claim(engine: Engine, issue: str, size: int, attempt_id: str) -> list[Claimed]:
    """Mark up to `size` pending rows in flight for this attempt; skip those who left."""
    stamp = now()
    with transaction(engine) as conn:
        chosen = (
            select(deliveries.c.id)
            .where(deliveries.c.issue == issue, deliveries.c.state == "pending")
            .order_by(deliveries.c.id)
            .limit(size)
        )
        target: Any
        if conn.dialect.name == "postgresql":
            # Lock the rows first and skip those other senders hold. (Inside an IN
            # subquery PostgreSQL may run a LIMIT ... FOR UPDATE more than once.)
            target = list(conn.scalars(chosen.with_for_update(skip_locked=True)))
        else:
            # SQLite: one statement, so the read never has to be upgraded to a write.
            target = chosen.scalar_subquery()
        taken = conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(target), deliveries.c.state == "pending")
            .values(
                state="in_flight",
                attempt=deliveries.c.attempt + 1,
                attempt_id=attempt_id,
                claimed_at=stamp,
                updated_at=stamp,
            )
            .returning(*CLAIMED_COLUMNS)
        ).all()
        # Whether each is still subscribed, and under which name, as of now.
        current = {
            r.id: r
            for r in conn.execute(
                select(subscribers.c.id, subscribers.c.status, subscribers.c.name).where(
                    subscribers.c.id.in_([t.subscriber_id for t in taken if t.subscriber_id])
                )
            )
        }
        rows = [
            _Taken(t.id, t.subscriber_id, t.email, t.name, t.attempt, *_now_as(current, t))
            for t in sorted(taken, key=lambda t: t.id)
        ]
        left = [r.id for r in rows if r.status != "active"]
        if left:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(left))
                .values(
                    state="skipped",
                    error="left the list after the send started",
                    updated_at=stamp,
                )
            )
    return [
        Claimed(r.id, r.subscriber_id, r.email, r.current_name or r.name, r.attempt)
        for r in rows
        if r.status == "active"
    ]


def record(
    engine: Engine,
    claimed: Sequence[Claimed],
    results: Sequence[SendResult],
    attempt_id: str,
    max_attempts: int,
) -> None:
    """Write each row's answer, only if this attempt still holds it."""
    stamp = now()
    changes = []
    for row, result in zip(claimed, results, strict=True):
        values: dict[str, Any] = {
            "_id": row.id,
            "state": "pending",
            "provider_message_id": None,
            "error": result.reason or None,
            "sent_at": None,
        }
        if result.status is Status.SENT:
            values.update(state="sent", provider_message_id=result.message_id, sent_at=stamp)
        elif result.status is Status.RETRY and row.attempt >= max_attempts:
            values.update(
                state="failed", error=f"gave up after {row.attempt} attempts: {result.reason}"
            )
        elif result.status is not Status.RETRY:
            values["state"] = "failed"
        changes.append(values)
    if not changes:
        return
    with transaction(engine) as conn:
        # Plain tuples to the driver: SQLAlchemy's per-value conversion cost more than
        # the updates themselves at thousands of messages a second.
        when = bind(conn, deliveries.c.updated_at, stamp)
        rows = [
            (
                c["state"],
                c["provider_message_id"],
                c["error"],
                when if c["sent_at"] else None,
                when,
                c["_id"],
                attempt_id,
            )
            for c in changes
        ]
        conn.exec_driver_sql(
            driver_sql(
                conn,
                "UPDATE deliveries SET state = ?, provider_message_id = ?, error = ?, "
                "sent_at = ?, updated_at = ? "
                "WHERE id = ? AND attempt_id = ? AND state = 'in_flight'",
            ),
            rows,
        )


def release(engine: Engine, claimed: Sequence[Claimed], attempt_id: str, reason: str) -> None:
    """Give claimed rows back as pending, their attempt not counted (nothing was sent)."""
    _update_held(
        engine, claimed, attempt_id, state="pending", attempt=deliveries.c.attempt - 1, error=reason
    )


def _update_held(engine: Engine, claimed: Sequence[Claimed], held_by: str, **values: Any) -> int:
    """Update the rows that this attempt still holds in flight; returns how many."""
    if not claimed:
        return 0
    with transaction(engine) as conn:
        return int(
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_([c.id for c in claimed]),
                    deliveries.c.attempt_id == held_by,
                    deliveries.c.state == "in_flight",
                )
                .values(updated_at=now(), **values)
            ).rowcount
        )


def effective_lease(engine: Engine, lease: float) -> float:
    """On SQLite one sender works an issue at a time, so whatever is in flight is lost."""
    return 0.0 if engine.dialect.name == "sqlite" else lease


def uncertain_batches(engine: Engine, issue: str, lease: float) -> dict[str, list[Claimed]]:
    """Rows in flight for longer than the lease, by the attempt that claimed them."""
    cutoff = now() - dt.timedelta(seconds=effective_lease(engine, lease))
    with transaction(engine) as conn:
        rows = conn.execute(
            select(*CLAIMED_COLUMNS, deliveries.c.attempt_id, deliveries.c.claimed_at)
            .where(deliveries.c.issue == issue, deliveries.c.state == "in_flight")
            .order_by(deliveries.c.id)
        ).all()
    batches: dict[str, list[Claimed]] = {}
    for r in rows:
        claimed_at = r.claimed_at if r.claimed_at.tzinfo else r.claimed_at.replace(tzinfo=dt.UTC)
        if claimed_at <= cutoff:
            batches.setdefault(r.attempt_id, []).append(_claimed(r))
    return batches


def reclaim(engine: Engine, batch: Sequence[Claimed], old: str, new: str) -> list[Claimed]:
    """Take over an uncertain batch for a new attempt (only if nobody else did)."""
    taken = _update_held(engine, batch, old, attempt_id=new, claimed_at=now())
    return list(batch) if taken == len(batch) else []


def requeue(engine: Engine, batch: Sequence[Claimed], old: str) -> int:
    """--retry-uncertain: put an uncertain batch back in the queue."""
    return _update_held(
        engine, batch, old, state="pending", error="uncertain: sent again on request"
    )


def ledger_status(engine: Engine, issue: str, lease: float) -> LedgerStatus:
    status = LedgerStatus(issue)
    with transaction(engine) as conn:
        if conn.execute(select(sends.c.issue).where(sends.c.issue == issue)).first() is None:
            status.exists = False
            return status
        counts: dict[str, int] = dict(
            conn.execute(
                select(deliveries.c.state, func.count())
                .where(deliveries.c.issue == issue)
                .group_by(deliveries.c.state)
            ).all()
        )
        status.failed = [
            (email, error or "")
            for email, error in conn.execute(
                select(deliveries.c.email, deliveries.c.error)
                .where(deliveries.c.issue == issue, deliveries.c.state == "failed")
                .order_by(deliveries.c.id)
            )
        ]
    uncertain = [c.email for rows in uncertain_batches(engine, issue, lease).values() for c in rows]
    in_flight = int(counts.pop("in_flight", 0))
    status.counts = {
        state: int(counts.get(state, 0)) for state in ("pending", "sent", "failed", "skipped")
    }
    status.counts["in_flight"] = in_flight - len(uncertain)
    status.counts["uncertain"] = len(uncertain)
    status.uncertain = uncertain
    return status


def mark_uncertain(
    engine: Engine, claimed: Sequence[Claimed], attempt_id: str, reason: str
) -> None:
    """The request went out and no answer came back: leave the rows in flight, lost."""
    _update_held(engine, claimed, attempt_id, claimed_at=LOST, error=f"uncertain: {reason}")


def reopen(engine: Engine, ids: Sequence[int], reason: str) -> None:
    """Failed rows go back to pending: a stopped send retries them when it is run again."""
    if not ids:
        return
    with transaction(engine) as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == "failed")
            .values(state="pending", attempt=0, error=reason, updated_at=now())
        )


def finish(engine: Engine, issue: str) -> bool:
    """Mark the send finished when nothing is pending or in flight any more."""
    with transaction(engine) as conn:
        open_rows = conn.scalar(
            select(func.count())
            .select_from(deliveries)
            .where(deliveries.c.issue == issue, deliveries.c.state.in_(["pending", "in_flight"]))
        )
        if open_rows:
            return False
        conn.execute(
            update(sends)
            .where(sends.c.issue == issue, sends.c.finished_at.is_(None))
            .values(finished_at=now())
        )
        return True


def pending_count(engine: Engine, issue: str) -> int:
    with transaction(engine) as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.issue == issue, deliveries.c.state == "pending")
            )
            or 0
        )


def pending_rows(engine: Engine, issue: str, page: int = 1000) -> Iterator[Claimed]:
    """The rows still to send, a page at a time (for a dry run)."""
    last = 0
    while True:
        with transaction(engine) as conn:
            rows = conn.execute(
                select(*CLAIMED_COLUMNS)
                .where(
                    deliveries.c.issue == issue,
                    deliveries.c.state == "pending",
                    deliveries.c.id > last,
                )
                .order_by(deliveries.c.id)
                .limit(page)
            ).all()
        if not rows:
            return
        yield from (_claimed(r) for r in rows)
        last = rows[-1].id
