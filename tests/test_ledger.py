"""Ledger transitions, one at a time, on SQLite and PostgreSQL.

The engine tests show that sends end right; these show each step the engine relies on:
a claim takes only pending rows and skips who left, an answer is written only by the
attempt that holds the row, and lost answers become a state of their own.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select, update

from newsletter.audience.subscribers import add_subscriber, remove_subscriber
from newsletter.config import Settings
from newsletter.delivery import ledger, recovery
from newsletter.delivery.ledger import Answer, State
from newsletter.delivery.senders import STALE, Sender, dead_senders, senders_in_flight
from newsletter.delivery.status import ledger_status
from newsletter.errors import SendError
from newsletter.storage import deliveries, departures, open_engine, senders, transaction

ISSUE = "2026-11-26-welcome"


def states(engine: Engine) -> dict[str, str]:
    with transaction(engine) as conn:
        return dict(conn.execute(select(deliveries.c.email, deliveries.c.state)).all())  # type: ignore[arg-type]


@pytest.fixture
def started(engine: Engine) -> Engine:
    for n in range(5):
        add_subscriber(engine, f"r{n}@example.org", name=f"Reader {n}")
    add_subscriber(engine, "later@example.org", status="pending")
    record = ledger.start_send(engine, ISSUE, "hash-1", segment="", provider="outbox")
    assert record.created and record.audience == 5  # the pending subscriber is not in it
    return engine


def test_snapshot_is_taken_once_and_checked_after(started: Engine) -> None:
    again = ledger.start_send(started, ISSUE, "hash-1", segment="", provider="outbox")
    assert not again.created and again.audience == 5
    with pytest.raises(SendError, match="the issue changed since its send started"):
        ledger.start_send(started, ISSUE, "hash-2", segment="", provider="outbox")
    with pytest.raises(SendError, match="started for the whole list"):
        ledger.start_send(started, ISSUE, "hash-1", segment="news", provider="outbox")
    moved = ledger.start_send(
        started, ISSUE, "hash-2", segment="", provider="outbox", allow_changed=True
    )
    assert moved.content_hash == "hash-2"


def test_claim_takes_pending_rows_in_order_and_skips_who_left(started: Engine) -> None:
    remove_subscriber(started, "r1@example.org")
    first = ledger.claim(started, ISSUE, 3, "a1")
    assert [c.email for c in first] == ["r0@example.org", "r2@example.org"]
    assert all(c.attempt == 1 for c in first)
    now = states(started)
    assert now["r1@example.org"] == State.SKIPPED
    assert now["r0@example.org"] == now["r2@example.org"] == State.IN_FLIGHT
    second = ledger.claim(started, ISSUE, 10, "a2")
    assert [c.email for c in second] == ["r3@example.org", "r4@example.org"]
    assert ledger.claim(started, ISSUE, 10, "a3") == []


def test_record_writes_answers_only_for_the_attempt_holding_the_rows(started: Engine) -> None:
    claimed = ledger.claim(started, ISSUE, 3, "mine")
    sent, retry, refused = claimed
    ledger.record(
        started,
        [
            Answer(sent, State.SENT, "pm-1"),
            Answer(retry, State.PENDING, error="429"),
            Answer(refused, State.FAILED, error="inactive"),
        ],
        "someone-else",  # a sender that does not hold them changes nothing
    )
    assert set(states(started).values()) == {State.IN_FLIGHT, State.PENDING}
    ledger.record(
        started,
        [
            Answer(sent, State.SENT, "pm-1"),
            Answer(retry, State.PENDING, error="429"),
            Answer(refused, State.FAILED, error="inactive"),
        ],
        "mine",
    )
    now = states(started)
    assert now[sent.email] == State.SENT and now[refused.email] == State.FAILED
    assert now[retry.email] == State.PENDING
    with transaction(started) as conn:
        row = conn.execute(
            select(deliveries.c.provider_message_id, deliveries.c.sent_at).where(
                deliveries.c.email == sent.email
            )
        ).one()
    assert row.provider_message_id == "pm-1" and row.sent_at is not None
    # An answer arriving twice is not written twice: the row is no longer in flight.
    ledger.record(started, [Answer(refused, State.SENT, "late")], "mine")
    assert states(started)[refused.email] == State.FAILED


def test_release_gives_rows_back_without_counting_the_attempt(started: Engine) -> None:
    claimed = ledger.claim(started, ISSUE, 2, "a1")
    ledger.release(started, claimed, "a1", "stopped before sending")
    again = ledger.claim(started, ISSUE, 2, "a2")
    assert [c.id for c in again] == [c.id for c in claimed]
    assert all(c.attempt == 1 for c in again)


def test_lost_answers_are_uncertain_until_requeued_or_reclaimed(started: Engine) -> None:
    lost = ledger.claim(started, ISSUE, 2, "a1")
    ledger.mark_uncertain(started, lost, "a1", "timed out")
    assert [states(started)[c.email] for c in lost] == [State.UNCERTAIN] * 2
    status = ledger_status(started, ISSUE, 600)
    assert status.counts["uncertain"] == 2 and status.counts["in_flight"] == 0
    assert status.uncertain == [c.email for c in lost]
    assert not ledger.finish(started, ISSUE)
    batches = recovery.uncertain_batches(started, ISSUE)
    assert list(batches) == ["a1"] and [c.id for c in batches["a1"]] == [c.id for c in lost]
    # Reclaiming needs the old attempt id: a stale one takes nothing.
    assert recovery.reclaim(started, lost, "wrong", "a2") == []
    assert [c.id for c in recovery.reclaim(started, lost, "a1", "a2")] == [c.id for c in lost]
    assert {states(started)[c.email] for c in lost} == {State.IN_FLIGHT}
    ledger.mark_uncertain(started, lost, "a2", "dropped")
    assert recovery.requeue(started, lost, "a2") == 2
    assert {states(started)[c.email] for c in lost} == {State.PENDING}


def _die(sender: Sender) -> None:
    """What a SIGKILL does to a sender: no goodbye, its heartbeat stops, its lock goes."""
    sender._stop.set()
    if sender._lock is not None:
        sender._lock.close()  # PostgreSQL releases the advisory lock with the session
    with transaction(sender.engine) as conn:
        conn.execute(
            update(senders)
            .where(senders.c.id == sender.id)
            .values(heartbeat_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=STALE + 1))
        )


def test_rows_of_a_dead_sender_become_uncertain(started: Engine) -> None:
    sender = Sender(started, ISSUE).__enter__()
    attempt = sender.attempt_id()
    claimed = ledger.claim(started, ISSUE, 2, attempt)
    ledger.on_the_wire(started, ISSUE, attempt)
    unsent = ledger.claim(started, ISSUE, 1, sender.attempt_id())  # claimed, never sent
    held = senders_in_flight(started, ISSUE)
    assert held == {sender.id: 3}
    assert dead_senders(started, ISSUE, held) == set()  # alive: its rows are in flight
    assert ledger_status(started, ISSUE, 600).counts["in_flight"] == 3
    _die(sender)
    assert dead_senders(started, ISSUE, held) == {sender.id}
    status = ledger_status(started, ISSUE, 600)  # seen at once, before anyone writes it down
    assert status.counts["uncertain"] == 2 and status.counts["in_flight"] == 0
    assert status.counts["pending"] == 3  # the one that never left, and the two untouched
    assert recovery.orphan(started, ISSUE, {sender.id}, 600) == (2, 1)
    assert {states(started)[c.email] for c in claimed} == {State.UNCERTAIN}
    assert states(started)[unsent[0].email] == State.PENDING
    assert ledger.claim(started, ISSUE, 1, "next")[0].attempt == 1  # that try did not count


def test_a_batch_older_than_the_lease_is_lost_even_if_its_sender_lives(started: Engine) -> None:
    with Sender(started, ISSUE) as sender:
        attempt = sender.attempt_id()
        claimed = ledger.claim(started, ISSUE, 2, attempt)
        ledger.on_the_wire(started, ISSUE, attempt)
        assert ledger_status(started, ISSUE, 600).counts["uncertain"] == 0
        with transaction(started) as conn:
            conn.execute(
                update(departures)
                .where(departures.c.attempt_id == attempt)
                .values(departed_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=605))
            )
        assert ledger_status(started, ISSUE, 600).counts["uncertain"] == 2
        assert recovery.orphan(started, ISSUE, set(), 600) == (2, 0)
    assert {states(started)[c.email] for c in claimed} == {State.UNCERTAIN}


def test_rows_an_older_version_noted_as_sent_off_still_count(started: Engine) -> None:
    """Before migration 8 each row of a batch on the wire carried claimed_at: a database
    upgraded in the middle of a send still knows which rows had left."""
    sender = Sender(started, ISSUE).__enter__()
    old, never = (
        ledger.claim(started, ISSUE, 1, sender.attempt_id()),
        ledger.claim(started, ISSUE, 1, sender.attempt_id()),
    )
    with transaction(started) as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == old[0].id)
            .values(claimed_at=dt.datetime.now(dt.UTC))
        )
    _die(sender)
    assert recovery.orphan(started, ISSUE, {sender.id}, 600) == (1, 1)
    assert states(started)[old[0].email] == State.UNCERTAIN
    assert states(started)[never[0].email] == State.PENDING


def test_sqlite_has_one_sender_per_issue_until_it_dies(settings: Settings) -> None:
    started = open_engine(settings)  # SQLite only: PostgreSQL lets several senders share
    first = Sender(started, ISSUE).__enter__()
    with pytest.raises(SendError, match="another newsletter send is working on"):
        Sender(started, ISSUE).__enter__()
    _die(first)
    with Sender(started, ISSUE) as second:
        assert second.id != first.id


def test_quitting_keeps_only_what_left_uncertain(started: Engine) -> None:
    sent_off = ledger.claim(started, ISSUE, 2, "a1")
    ledger.on_the_wire(started, ISSUE, "a1")
    kept = ledger.claim(started, ISSUE, 2, "a2")
    recovery.abandon(started, sent_off, "a1", "quit")
    recovery.abandon(started, kept, "a2", "quit")
    assert {states(started)[c.email] for c in sent_off} == {State.UNCERTAIN}
    assert {states(started)[c.email] for c in kept} == {State.PENDING}


def test_finish_only_when_nothing_is_left(started: Engine) -> None:
    claimed = ledger.claim(started, ISSUE, 10, "a1")
    assert not ledger.finish(started, ISSUE)
    ledger.record(started, [Answer(c, State.SENT, f"id-{c.id}") for c in claimed], "a1")
    assert ledger.finish(started, ISSUE)
    failed = ledger.claim(started, ISSUE, 10, "a2")
    assert failed == []
    assert ledger_status(started, ISSUE, 600).counts["sent"] == 5


def test_reopen_puts_failed_rows_back(started: Engine) -> None:
    claimed = ledger.claim(started, ISSUE, 2, "a1")
    ledger.record(started, [Answer(c, State.FAILED, error="refused") for c in claimed], "a1")
    recovery.reopen(started, [c.id for c in claimed], "send stopped")
    assert {states(started)[c.email] for c in claimed} == {State.PENDING}
    assert ledger.pending_count(started, ISSUE) == 5
