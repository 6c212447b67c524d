"""Reading the ledger: where an issue's send stands, for `status`, the plan and dry runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from newsletter.delivery.ledger import CLAIMED_COLUMNS, Claimed, State, claimed_row
from newsletter.delivery.recovery import stale_claims, unsent_claims
from newsletter.delivery.senders import dead_senders, senders_in_flight
from newsletter.storage import deliveries, sends, transaction

# The order `status` shows the counts in.
SHOWN = ("pending", "sent", "failed", "skipped", "in_flight", "uncertain")


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


def ledger_status(engine: Engine, issue: str, lease: float) -> LedgerStatus:
    """Counts by state. Rows in flight whose sender is dead (or past the lease) count as
    uncertain, though no sender has written that down yet."""
    status = LedgerStatus(issue)
    dead = dead_senders(engine, issue, senders_in_flight(engine, issue))
    with transaction(engine) as conn:
        if conn.execute(select(sends.c.issue).where(sends.c.issue == issue)).first() is None:
            status.exists = False
            return status
        counts: dict[str, int] = {
            state: int(n)
            for state, n in conn.execute(
                select(deliveries.c.state, func.count())
                .where(deliveries.c.issue == issue)
                .group_by(deliveries.c.state)
            )
        }
        status.failed = [
            (email, error or "")
            for email, error in conn.execute(
                select(deliveries.c.email, deliveries.c.error)
                .where(deliveries.c.issue == issue, deliveries.c.state == State.FAILED)
                .order_by(deliveries.c.id)
            )
        ]
        status.uncertain = list(
            conn.scalars(
                select(deliveries.c.email)
                .where(deliveries.c.issue == issue, deliveries.c.state == State.UNCERTAIN)
                .union_all(select(deliveries.c.email).where(stale_claims(issue, dead, lease)))
            )
        )
        unsent = int(
            conn.scalar(
                select(func.count()).select_from(deliveries).where(unsent_claims(issue, dead))
            )
            or 0
        )
    overdue = len(status.uncertain) - counts.get(State.UNCERTAIN, 0)
    status.counts = {state: counts.get(state, 0) for state in SHOWN}
    status.counts["in_flight"] -= overdue + unsent
    status.counts["uncertain"] += overdue
    status.counts["pending"] += unsent  # a dead sender's claims that never left
    return status


def pending_rows(engine: Engine, issue: str, page: int = 1000) -> Iterator[Claimed]:
    """The rows still to send, a page at a time (for a dry run)."""
    last = 0
    while True:
        with transaction(engine) as conn:
            rows = conn.execute(
                select(*CLAIMED_COLUMNS)
                .where(
                    deliveries.c.issue == issue,
                    deliveries.c.state == State.PENDING,
                    deliveries.c.id > last,
                )
                .order_by(deliveries.c.id)
                .limit(page)
            ).all()
        if not rows:
            return
        yield from (claimed_row(r) for r in rows)
        last = rows[-1].id
