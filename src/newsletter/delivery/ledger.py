"""The send ledger: one row per issue and recipient, so a send resumes without duplicates.

    pending ──claim──▶ in_flight ──record──▶ sent | failed | pending (retry later)
       ▲                  │
       └──── release ─────┴── no answer came back (mark_uncertain) ──▶ uncertain

What becomes of rows a send lost or left behind (a dead sender's claims, uncertain
batches, refused rows resent on request) is recovery.py's.

A batch is claimed (marked in flight with an attempt id) before its HTTP call, noted as
gone (on_the_wire) when its request leaves, and its answer written after it, each in its
own transaction; every write after the claim names
the attempt id, so a sender that lost its rows to another never overwrites them. Claims
are one UPDATE over a subquery that skips rows other senders hold (FOR UPDATE SKIP LOCKED
on PostgreSQL), so several senders never share a row.

The ledger speaks only of delivery states; what a provider's answer means for a row is
the engine's to decide (`Answer`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, literal, select, text, update

from newsletter.audience.subscribers import audience_where
from newsletter.compose.fields import personal
from newsletter.compose.personalize import NO_FIELDS
from newsletter.delivery import ledger_sql as sql
from newsletter.errors import SendError
from newsletter.storage import (
    IN_LIST,
    DeliveryState,
    SubscriberStatus,
    bind,
    deliveries,
    departures,
    driver_rows,
    in_list,
    list_param,
    now,
    sends,
    subscribers,
    transaction,
)

State = DeliveryState


class Claimed(NamedTuple):
    """A ledger row claimed for one attempt (a tuple: a send makes one per recipient,
    and a frozen dataclass cost as much to make as the row's SQL)."""

    id: int
    subscriber_id: int
    email: str
    name: str
    attempt: int
    # The subscriber's personal fields as of the claim (compose.fields.personal).
    fields: Mapping[str, str] = NO_FIELDS


# The ledger columns a Claimed is made of, in its field order, and the subscriber's fields.
CLAIMED_COLUMNS = (
    deliveries.c.id,
    deliveries.c.subscriber_id,
    deliveries.c.email,
    deliveries.c.name,
    deliveries.c.attempt,
    select(subscribers.c.fields)
    .where(subscribers.c.id == deliveries.c.subscriber_id)
    .scalar_subquery()
    .label("fields"),
)


def claimed_row(row: Any) -> Claimed:
    return Claimed(
        row.id, row.subscriber_id, row.email, row.name, row.attempt, personal(row.fields)
    )


class Answer(NamedTuple):
    """What became of one claimed row: SENT, FAILED or PENDING (to be retried)."""

    row: Claimed
    state: DeliveryState
    message_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SendRecord:
    issue: str
    content_hash: str
    segment: str
    provider: str
    audience: int
    created: bool  # this run took the snapshot


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
                raise SendError(f"this issue's send started {started}")
            if row.content_hash != content_hash:
                if not allow_changed:
                    raise SendError(
                        f"the issue changed since its send started ({row.content_hash[:12]} → "
                        f"{content_hash[:12]}); the rest of the list would get another email "
                        "than the first part. Undo the change, or pass --allow-changed"
                    )
                conn.execute(
                    update(sends).where(sends.c.issue == issue).values(content_hash=content_hash)
                )
            return SendRecord(issue, content_hash, segment, row.provider, row.audience, False)
        where = audience_where(conn, segment)
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
            literal(State.PENDING.value),
            literal(0),
            literal(stamp, type_=deliveries.c.updated_at.type),
        ).where(*where)
        columns = ["issue", "subscriber_id", "email", "email_key", "name", "state", "attempt"]
        conn.execute(insert(deliveries).from_select([*columns, "updated_at"], snapshot))
        audience = _count(conn, issue)
        conn.execute(update(sends).where(sends.c.issue == issue).values(audience=audience))
    return SendRecord(issue, content_hash, segment, provider, audience, True)


def _first(row: Any) -> Any:
    return row[0]


def _fields(stored: Any) -> Mapping[str, Any]:
    """A subscriber's fields as the driver gives them (JSON text on SQLite)."""
    if isinstance(stored, str | bytes):
        stored = orjson.loads(stored) if stored not in ("{}", b"{}", "") else None
    return personal(stored if isinstance(stored, dict) else None)


def claim(
    engine: Engine, issue: str, size: int, attempt_id: str, max_attempts: int = 1_000_000
) -> list[Claimed]:
    """Mark up to `size` pending rows in flight for this attempt; skip those who left.

    Rows already tried `max_attempts` times in this run wait for the next run. A batch
    of leavers alone is skipped and the next one claimed, so an empty list always means
    nothing is left to claim. The hot path of a send: plain SQL and tuples, no ORM rows.
    """
    with transaction(engine) as conn:
        while True:
            taken, kept = _claim_once(conn, issue, size, attempt_id, max_attempts)
            if kept or not taken:
                return kept


def _claim_once(
    conn: Connection, issue: str, size: int, attempt_id: str, max_attempts: int
) -> tuple[int, list[Claimed]]:
    """One claim statement: how many rows it took, and those whose subscriber stayed."""
    stamp = bind(conn, deliveries.c.updated_at, now())
    if conn.dialect.name == "postgresql":
        ids = list(
            conn.scalars(
                select(deliveries.c.id)
                .where(
                    deliveries.c.issue == issue,
                    deliveries.c.state == State.PENDING,
                    deliveries.c.attempt < max_attempts,
                )
                .order_by(deliveries.c.id)
                .limit(size)
                .with_for_update(skip_locked=True)
            )
        )
        params: tuple[Any, ...] = (attempt_id, stamp, ids)
    else:
        params = (attempt_id, stamp, issue, max_attempts, size)
    # The driver's own cursor, in this transaction: plain tuples, no result rows made
    # per row (a tenth of the claim's CPU).
    taken = driver_rows(conn, sql.CLAIM[conn.dialect.name], params)
    who = [row[1] for row in taken if row[1] is not None]
    subscribers_now = sql.SUBSCRIBERS.format(ids=IN_LIST[conn.dialect.name])
    now_as = {
        row[0]: row[1:] for row in driver_rows(conn, subscribers_now, (list_param(conn, who),))
    }
    kept, left = [], []
    active = SubscriberStatus.ACTIVE.value
    for row_id, subscriber_id, email, attempt in sorted(taken, key=_first):
        status, current, fields = now_as.get(subscriber_id, (None, "", None))
        if status != active:
            left.append(row_id)
        else:
            kept.append(Claimed(row_id, subscriber_id, email, current, attempt, _fields(fields)))
    if left:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(left))
            .values(
                state=State.SKIPPED,
                error="left the list after the send started",
                updated_at=now(),
            )
        )
    return len(taken), kept


def record(engine: Engine, answers: Sequence[Answer], attempt_id: str) -> None:
    """Write each row's answer, only if this attempt still holds it.

    One statement for the whole batch, its rows passed as one parameter (JSON on SQLite,
    arrays on PostgreSQL): the driver and SQLAlchemy then cost nothing per row.
    """
    if not answers:
        return
    stamp = now()
    rows = [(a.row.id, a.state.value, a.message_id, a.error) for a in answers]
    with transaction(engine) as conn:
        when = bind(conn, deliveries.c.updated_at, stamp)
        if conn.dialect.name == "postgresql":
            ids, states, message_ids, errors = (list(column) for column in zip(*rows, strict=True))
            params: tuple[Any, ...] = (when, when, ids, states, message_ids, errors, attempt_id)
            conn.exec_driver_sql(sql.RECORD["postgresql"], params)
        elif sql.UPDATE_FROM:
            # Most answers of most batches say "sent, under this id": those go as one JSON
            # object of id -> message id, which SQLite reads without a json_extract a row.
            sent: dict[str, str | None] = {}
            rest = []
            for row in rows:
                if row[1] == "sent" and row[3] is None:
                    sent[str(row[0])] = row[2]
                else:
                    rest.append(row)
            if sent:
                conn.exec_driver_sql(
                    sql.RECORD_SENT, (when, orjson.dumps(sent).decode(), attempt_id)
                )
            if rest:
                conn.exec_driver_sql(
                    sql.RECORD["sqlite"], (when, orjson.dumps(rest).decode(), attempt_id)
                )
        else:  # SQLite before 3.33 has no UPDATE ... FROM
            conn.exec_driver_sql(
                "UPDATE deliveries SET state = ?, provider_message_id = ?, error = ?, "
                "sent_at = CASE WHEN ? = 'sent' THEN ? END, updated_at = ? "
                "WHERE id = ? AND attempt_id = ? AND state = 'in_flight'",
                [(s, m, e, s, when, when, i, attempt_id) for i, s, m, e in rows],
            )


def release(engine: Engine, claimed: Sequence[Claimed], attempt_id: str, reason: str) -> None:
    """Give claimed rows back as pending, their attempt not counted (nothing was sent)."""
    update_held(
        engine,
        claimed,
        attempt_id,
        state=State.PENDING,
        attempt=deliveries.c.attempt - 1,
        error=reason,
    )


def mark_uncertain(
    engine: Engine, claimed: Sequence[Claimed], attempt_id: str, reason: str
) -> None:
    """The request went out and no answer came back: it may or may not have been sent."""
    update_held(engine, claimed, attempt_id, state=State.UNCERTAIN, error=f"uncertain: {reason}")


def update_held(
    engine: Engine,
    claimed: Sequence[Claimed],
    held_by: str,
    held_as: DeliveryState = State.IN_FLIGHT,
    *,
    where: Sequence[Any] = (),
    **values: Any,
) -> int:
    """Update the rows this attempt still holds (in state `held_as`, and `where`);
    returns how many. Every change after a claim goes through here, so a sender that
    lost its rows to another never overwrites them."""
    if not claimed:
        return 0
    with transaction(engine) as conn:
        return int(
            conn.execute(
                update(deliveries)
                .where(
                    in_list(conn, deliveries.c.id, [c.id for c in claimed]),
                    deliveries.c.attempt_id == held_by,
                    deliveries.c.state == held_as,
                    *where,
                )
                .values(updated_at=now(), **values)
            ).rowcount
        )


def on_the_wire(engine: Engine, issue: str, attempt_id: str) -> None:
    """Note that the batch's request is about to leave: from now on a crash leaves its
    rows uncertain; before it, they simply go back to pending (see recovery).

    Once a batch, on the hot path: one row for the whole batch (storage.departures),
    where a mark on each of its rows was one more UPDATE of every message's row."""
    with transaction(engine) as conn:
        conn.execute(
            insert(departures).values(attempt_id=attempt_id, issue=issue, departed_at=now())
        )


def finish(engine: Engine, issue: str) -> bool:
    """Mark the send finished when nothing is pending, in flight or uncertain any more."""
    with transaction(engine) as conn:
        if _count(conn, issue, State.PENDING, State.IN_FLIGHT, State.UNCERTAIN):
            return False
        conn.execute(
            update(sends)
            .where(sends.c.issue == issue, sends.c.finished_at.is_(None))
            .values(finished_at=now())
        )
        # Nothing of the issue is in flight or uncertain any more: its batches' notes
        # that they left have said all they can.
        conn.execute(delete(departures).where(departures.c.issue == issue))
        return True


def pending_count(engine: Engine, issue: str, max_attempts: int | None = None) -> int:
    """Rows still to send (those with attempts left in this run, when given)."""
    with transaction(engine) as conn:
        if max_attempts is None:
            return _count(conn, issue, State.PENDING)
        return int(
            conn.scalar(
                select(func.count())
                .select_from(deliveries)
                .where(
                    deliveries.c.issue == issue,
                    deliveries.c.state == State.PENDING,
                    deliveries.c.attempt < max_attempts,
                )
            )
            or 0
        )


def _count(conn: Any, issue: str, *states: DeliveryState) -> int:
    where = [deliveries.c.issue == issue]
    if states:
        where.append(deliveries.c.state.in_([s.value for s in states]))
    return int(conn.scalar(select(func.count()).select_from(deliveries).where(*where)) or 0)
