"""Second chances: rows a send lost or left behind, and how a later run takes them up.

    in_flight, sender dead ──orphan──▶ uncertain (its request had left)
                                    └▶ pending   (it never left)
    uncertain ──requeue (--retry-uncertain)──▶ pending
    uncertain ──reclaim (idempotent provider)──▶ in_flight
    failed ──requeue_failed (--retry-failed)──▶ pending

A row whose request had left may have reached the reader, so it is never simply pending
again; one that never left is. Which senders are dead is senders.py's to say.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Engine, and_, false, or_, select, update

from newsletter.delivery.ledger import (
    CLAIMED_COLUMNS,
    Claimed,
    State,
    claimed_row,
    update_held,
)
from newsletter.storage import deliveries, departures, now, transaction


def _of(senders: Collection[str]) -> Any:
    whose = [deliveries.c.attempt_id.startswith(f"{s}.", autoescape=True) for s in senders]
    whose += [deliveries.c.attempt_id == s for s in senders]  # attempt ids of older versions
    return or_(*whose) if whose else false()


def _left(before: dt.datetime | None = None) -> Any:
    """Rows whose batch's request had left (before `before`, if given): noted once a
    batch in `departures`, or on the row itself (claimed_at) by older versions of the
    ledger and by reclaim."""
    batches = select(departures.c.attempt_id)
    row: Any = deliveries.c.claimed_at.is_not(None)
    if before is not None:
        batches = batches.where(departures.c.departed_at <= before)
        row = deliveries.c.claimed_at <= before
    return or_(row, deliveries.c.attempt_id.in_(batches))


def stale_claims(issue: str, senders: Collection[str], lease: float) -> Any:
    """Rows whose request had left and whose answer never came: their sender is dead, or
    the answer is older than the lease."""
    cutoff = now() - dt.timedelta(seconds=lease)
    return and_(
        deliveries.c.issue == issue,
        deliveries.c.state == State.IN_FLIGHT,
        _left(),
        or_(_left(cutoff), _of(senders)),
    )


def unsent_claims(issue: str, senders: Collection[str]) -> Any:
    """Rows a dead sender had claimed but never handed to the provider."""
    return and_(
        deliveries.c.issue == issue,
        deliveries.c.state == State.IN_FLIGHT,
        ~_left(),
        _of(senders),
    )


def orphan(engine: Engine, issue: str, senders: Collection[str], lease: float) -> tuple[int, int]:
    """Rows of dead senders: those whose request had left may have gone out, so they are
    uncertain, never pending; those that never left go back to pending. Returns how many
    became uncertain and how many pending."""
    with transaction(engine) as conn:
        returned = conn.execute(
            update(deliveries)
            .where(unsent_claims(issue, senders))
            .values(
                state=State.PENDING,
                attempt=deliveries.c.attempt - 1,
                error="its sender stopped before sending it",
                updated_at=now(),
            )
        )
        lost = conn.execute(
            update(deliveries)
            .where(stale_claims(issue, senders, lease))
            .values(
                state=State.UNCERTAIN,
                error="uncertain: its sender stopped before the answer came",
                updated_at=now(),
            )
        )
        return int(lost.rowcount), int(returned.rowcount)


def abandon(engine: Engine, claimed: Sequence[Claimed], attempt_id: str, reason: str) -> None:
    """Quitting with these rows held: uncertain if their request had left, else pending."""
    never_left = ~_left()
    update_held(
        engine, claimed, attempt_id, where=[never_left], state=State.PENDING,
        attempt=deliveries.c.attempt - 1,
    )  # fmt: skip
    update_held(engine, claimed, attempt_id, where=[~never_left], state=State.UNCERTAIN,
                error=f"uncertain: {reason}")  # fmt: skip


def uncertain_batches(engine: Engine, issue: str) -> dict[str, list[Claimed]]:
    """Uncertain rows, by the attempt that sent them (a batch goes again as a whole)."""
    with transaction(engine) as conn:
        rows = conn.execute(
            select(*CLAIMED_COLUMNS, deliveries.c.attempt_id)
            .where(deliveries.c.issue == issue, deliveries.c.state == State.UNCERTAIN)
            .order_by(deliveries.c.id)
        ).all()
    batches: dict[str, list[Claimed]] = {}
    for r in rows:
        batches.setdefault(r.attempt_id or "", []).append(claimed_row(r))
    return batches


def reclaim(engine: Engine, batch: Sequence[Claimed], old: str, new: str) -> list[Claimed]:
    """Take over an uncertain batch for a new attempt (only if nobody else did)."""
    taken = update_held(
        engine, batch, old, State.UNCERTAIN, state=State.IN_FLIGHT, attempt_id=new, claimed_at=now()
    )
    return list(batch) if taken == len(batch) else []


def requeue(engine: Engine, batch: Sequence[Claimed], old: str) -> int:
    """--retry-uncertain: put an uncertain batch back in the queue."""
    return update_held(
        engine,
        batch,
        old,
        State.UNCERTAIN,
        state=State.PENDING,
        error="uncertain: sent again on request",
    )


def fresh_attempts(engine: Engine, issue: str) -> None:
    """A new run gives every pending row its full number of attempts again."""
    with transaction(engine) as conn:
        conn.execute(
            update(deliveries)
            .where(
                deliveries.c.issue == issue,
                deliveries.c.state == State.PENDING,
                deliveries.c.attempt > 0,
            )
            .values(attempt=0)
        )


def requeue_failed(engine: Engine, issue: str) -> int:
    """--retry-failed: every failed row goes back to pending.

    Safe: the provider refused these, so nothing of them was delivered; a refusal that
    was about the address (inactive, invalid) comes back the same way, one request later.
    """
    with transaction(engine) as conn:
        return int(
            conn.execute(
                update(deliveries)
                .where(deliveries.c.issue == issue, deliveries.c.state == State.FAILED)
                .values(state=State.PENDING, attempt=0, error=None, updated_at=now())
            ).rowcount
        )


def reopen(engine: Engine, ids: Sequence[int], reason: str) -> None:
    """Failed rows go back to pending: a stopped send retries them when it is run again."""
    if not ids:
        return
    with transaction(engine) as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == State.FAILED)
            .values(state=State.PENDING, attempt=0, error=reason, updated_at=now())
        )
