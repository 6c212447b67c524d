"""The send engine: an issue to every active subscriber, exactly once.

The issue is rendered and inlined once; each recipient costs a join of the pre-split
HTML and text (see the package docstring). The main loop waits until a slot in the pool
is free, any pool-wide pause (429, 5xx) is over and the token bucket lets a batch go
*now*; only then does it claim rows, so no row waits in flight. A worker thread sends
the batch and records its answer the moment it comes, whatever the main loop is doing.
A batch whose answer was lost becomes "uncertain" rather than being sent twice; a
passing fault that outlasts the retries leaves rows pending for the next run, never
failed. Stopping (Ctrl-C) lets the batches in flight finish; a second Ctrl-C quits at
once and marks them uncertain. Running the command again continues where it stopped.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from sqlalchemy import Engine

from newsletter.audience.subscribers import count_audience
from newsletter.compose.build import content_hash, load_built
from newsletter.config import Settings
from newsletter.delivery import ledger, recovery
from newsletter.delivery.addressing import Addresser
from newsletter.delivery.connect import open_provider
from newsletter.delivery.dry_run import dry_run as run_dry
from newsletter.delivery.ledger import Answer, Claimed, State
from newsletter.delivery.pacing import RetryPolicy, TokenBucket
from newsletter.delivery.plan import batch_size, checked_options, nobody, resolve_rate
from newsletter.delivery.providers import Provider, SendResult, Status
from newsletter.delivery.providers.base import departing
from newsletter.delivery.report import Progress, SendReport
from newsletter.delivery.senders import (
    Sender,
    dead_senders,
    others_at_work,
    senders_in_flight,
)
from newsletter.delivery.status import ledger_status
from newsletter.delivery.tokens import secret_key
from newsletter.errors import NewsletterError, ProviderError, RecipientsRejected
from newsletter.runtime import longer_turns, quiet_collector
from newsletter.storage import open_engine

__all__ = ["Progress", "SendReport", "send_issue", "settle"]

Batch = Future[None]
# Allocations between the cycle collector's youngest passes during a send (700 by
# default): each message makes a few short-lived objects and no cycles. Measured at
# 100,000 to SendGrid's fake, 4 pairs of runs: 80 -> 77 us of CPU a message.
COLLECT_EVERY = 20_000
# How long a thread of a send may hold the interpreter lock before it must hand it over
# (5 ms by default; runtime.longer_turns). Measured at 100,000 to the three providers'
# fakes, 19 alternating pairs of runs: 16 lower, by 8 % in the median pair.
SWITCH_EVERY = 0.05


def send_issue(
    settings: Settings,
    folder: Path,
    *,
    environ: Mapping[str, str],
    segment: str = "",
    rate: float | None = None,
    concurrency: int | None = None,
    retry_uncertain: bool = False,
    retry_failed: bool = False,
    allow_changed: bool = False,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    provider: Provider | None = None,
) -> SendReport:
    """Send an issue to the list through the ledger; see the module docstring.

    `provider` defaults to the configured one, with a client of its own for this send.
    """
    rate, concurrency = checked_options(rate, concurrency)
    if dry_run:
        return run_dry(settings, folder, environ=environ, segment=segment)
    stop = stop or threading.Event()
    issue, rendered = load_built(settings, folder)
    provider_name = provider.name if provider else settings.provider.name
    addresser = Addresser(settings, issue.key, rendered, secret_key(environ, provider_name))
    engine = open_engine(settings)
    try:
        with contextlib.ExitStack() as stack:
            if provider is None:
                # Opened first: a missing or malformed key stops us before anything else.
                provider = stack.enter_context(
                    open_provider(settings, environ=environ, idempotency_scope=issue.key)
                )
            sender = stack.enter_context(Sender(engine, issue.key))
            if ledger.find_send(engine, issue.key) is None and not count_audience(engine, segment):
                raise nobody(segment)
            ledger.start_send(
                engine,
                issue.key,
                content_hash(rendered),
                segment=segment,
                provider=provider_name,
                allow_changed=allow_changed,
            )
            stack.enter_context(quiet_collector(young=COLLECT_EVERY))
            stack.enter_context(longer_turns(SWITCH_EVERY))
            run = _Run(
                settings,
                engine,
                issue.key,
                provider,
                addresser,
                sender,
                stop,
                progress,
                rate=resolve_rate(settings, provider_name, rate),
                concurrency=concurrency or settings.sending.concurrency,
                batch_size=batch_size(settings, provider_name, rendered),
            )
            report = run.go(retry_uncertain=retry_uncertain, retry_failed=retry_failed)
        report.finished = ledger.finish(engine, issue.key)
        if not report.finished:
            # Each of these reads the issue's whole ledger: a finished send (nothing
            # pending, in flight or uncertain anywhere) has nothing for them to find.
            others = others_at_work(engine, issue.key, sender.id)
            report.elsewhere = [str(o) for o in others]
            report.in_flight_elsewhere = sum(o.in_flight for o in others)
            report.uncertain = ledger_status(engine, issue.key, settings.sending.lease).uncertain
        return report
    finally:
        engine.dispose()


def settle(
    claimed: Sequence[Claimed], results: Sequence[SendResult]
) -> tuple[list[Answer], list[Claimed], str]:
    """What the provider's results mean for the ledger rows of one batch.

    Returns the answers to record, the rows whose answer was lost (uncertain) and the
    reason they were lost.
    """
    answers: list[Answer] = []
    lost: list[Claimed] = []
    lost_reason = ""
    for row, r in zip(claimed, results, strict=True):
        if r.status is Status.UNCERTAIN:
            lost.append(row)
            lost_reason = lost_reason or r.reason
        elif r.status is Status.SENT:
            answers.append(Answer(row, State.SENT, r.message_id))
        elif r.status is Status.RETRY:
            # Back in the queue; after max_attempts tries in this run it waits for the
            # next run (ledger.claim skips it), but it never fails for a passing fault.
            answers.append(Answer(row, State.PENDING, error=r.reason or None))
        else:
            answers.append(Answer(row, State.FAILED, error=r.reason or None))
    return answers, lost, lost_reason


class _Run:
    """One process's share of a send: claim, send, record, until nothing is left."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        issue: str,
        provider: Provider,
        addresser: Addresser,
        sender: Sender,
        stop: threading.Event,
        progress: Callable[[Progress], None] | None,
        *,
        rate: float,
        concurrency: int,
        batch_size: int,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.issue = issue
        self.provider = provider
        self.addresser = addresser
        self.sender = sender
        self.stop = stop
        self.on_progress = progress
        self.concurrency = concurrency
        # About a second of sending at most, so that pacing never holds rows in flight.
        self.batch_size = max(1, min(batch_size, provider.max_batch, int(rate)))
        self.bucket = TokenBucket(rate, self.batch_size)
        self.max_attempts = settings.provider.retries
        self.policy = RetryPolicy(
            attempts=settings.provider.retries, base_delay=settings.provider.retry_delay
        )
        self.report = SendReport(issue, provider.name)
        self.progress = Progress(total=ledger.pending_count(engine, issue))
        self.lock = threading.Lock()  # the counters below change in worker threads
        # SQLite has one writer at a time and makes the others poll with sleeps; in one
        # process a lock hands the database from thread to thread without them.
        self.writing: contextlib.AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self.pause_until = 0.0
        self.retry_streak = 0
        self.failed_streak: list[list[int]] = []
        self.error: NewsletterError | None = None
        self.halt = ""  # why the run must stop although rows are left

    # --- the main loop ------------------------------------------------------------------

    def go(self, *, retry_uncertain: bool, retry_failed: bool) -> SendReport:
        self._reap()
        if retry_failed:
            recovery.requeue_failed(self.engine, self.issue)
        recovery.fresh_attempts(self.engine, self.issue)
        self._settle_uncertain(retry_uncertain)
        self.progress.total = ledger.pending_count(self.engine, self.issue) + self.progress.done
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="send")
        in_flight: dict[Batch, tuple[list[Claimed], str]] = {}
        quitting = drained = False
        try:
            drained = self._loop(pool, in_flight)
            while in_flight:  # stopping: the batches on the wire finish and are recorded
                self._wait(in_flight)
        except KeyboardInterrupt:
            # A second Ctrl-C: quit now. What is on the wire may or may not arrive.
            quitting = True
            for claimed, attempt_id in in_flight.values():
                recovery.abandon(self.engine, claimed, attempt_id, "quit before the answer")
            raise
        finally:
            pool.shutdown(wait=not quitting, cancel_futures=quitting)
        if self.error is not None:
            raise self.error
        if not drained:  # (a drained loop has just looked for dead senders' rows)
            self._reap()
        self.report.deferred = ledger.pending_count(self.engine, self.issue)
        if self.halt:
            self.report.stopped = self.halt
        elif self.report.deferred and not self.report.interrupted:
            self.report.stopped = (
                f"{self.report.deferred} recipients are still pending: the provider asked "
                f"{self.max_attempts} times to try them later. Run the same command again "
                "to continue"
            )
        return self.report

    def _loop(
        self, pool: ThreadPoolExecutor, in_flight: dict[Batch, tuple[list[Claimed], str]]
    ) -> bool:
        """Claim and hand out batches until told to stop (False) or until nothing is left
        that this run may send (True)."""
        while not self._should_stop():
            if len(in_flight) >= self.concurrency:
                self._wait(in_flight)
                continue
            delay = self.pause_until - time.monotonic()
            if delay > 0:
                self.stop.wait(min(delay, 0.5))
                continue
            if not self.bucket.take(self.batch_size, self.stop):
                continue
            attempt_id = self.sender.attempt_id()
            with self.writing:
                claimed = ledger.claim(
                    self.engine, self.issue, self.batch_size, attempt_id, self.max_attempts
                )
            self.bucket.give_back(self.batch_size - len(claimed))
            if not claimed:
                if not in_flight and not self._reap():
                    return True  # nothing left that this run may send (a dead sender's too)
                self._wait(in_flight)
                continue
            in_flight[pool.submit(self._send, claimed, attempt_id)] = (claimed, attempt_id)
        return False

    def _wait(self, in_flight: dict[Batch, tuple[list[Claimed], str]]) -> None:
        done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
        for future in done:
            del in_flight[future]
            future.result()  # a bug in a worker surfaces here

    def _should_stop(self) -> bool:
        if self.stop.is_set() and not self.report.stopped:
            self.report.stopped = "stopped on request; run the same command to continue"
            self.report.interrupted = True
        return self.stop.is_set() or self.error is not None or bool(self.halt)

    # --- in a worker thread --------------------------------------------------------------

    def _send(self, claimed: list[Claimed], attempt_id: str) -> None:
        address = self.addresser.message
        messages = [address(c.subscriber_id, c.email, c.name, c.fields) for c in claimed]
        left = False

        def leaving() -> None:
            # Noted once, when the adapter's request is about to go: after the batch is
            # encoded, so a sender killed while encoding leaves its rows pending.
            nonlocal left
            if not left:
                with self.writing:
                    ledger.on_the_wire(self.engine, self.issue, attempt_id)
                left = True

        if not getattr(self.provider, "announces_departure", False):
            leaving()
        try:
            with departing(leaving):
                results = self.provider.send(messages)
        except ProviderError as exc:  # the key was refused: nothing in this batch went out
            with self.writing:
                ledger.release(self.engine, claimed, attempt_id, str(exc))
            with self.lock:
                self.error = self.error or exc
            return
        except BaseException as exc:
            # A bug, not an answer: rows that may have gone out stay uncertain; rows that
            # never left go back to pending.
            if left:
                ledger.mark_uncertain(self.engine, claimed, attempt_id, "the sender crashed")
            else:
                crash = f"not sent: the sender crashed ({type(exc).__name__})"
                ledger.release(self.engine, claimed, attempt_id, crash)
            raise
        self._answer(claimed, results, attempt_id)

    def _answer(self, claimed: list[Claimed], results: list[SendResult], attempt_id: str) -> None:
        if self.provider.idempotent:
            # The batch's idempotency key makes resending a lost batch safe.
            results = [
                SendResult(r.email, Status.RETRY, reason=r.reason)
                if r.status is Status.UNCERTAIN
                else r
                for r in results
            ]
        answers, lost, reason = settle(claimed, results)
        with self.writing:
            if lost:
                ledger.mark_uncertain(self.engine, lost, attempt_id, reason)
            ledger.record(self.engine, answers, attempt_id)
        with self.lock:
            self.progress.uncertain += len(lost)
            self._count(answers, results)
            if self.on_progress is not None:
                self.on_progress(self.progress)

    def _count(self, answers: list[Answer], results: list[SendResult]) -> None:
        sent = sum(a.state is State.SENT for a in answers)
        refused = [a.row.id for a in answers if a.state is State.FAILED]
        retry = [r for r in results if r.status is Status.RETRY]
        self.report.sent += sent
        self.progress.sent += sent
        self.report.failed += len(refused)
        self.progress.failed += len(refused)
        if retry:
            self._back_off(retry, sent)
        elif sent:
            self.retry_streak = 0
            self.progress.waiting_until = None
        if sent == 0 and not retry and len(refused) == len(results):
            self.failed_streak.append(refused)
            if len(self.failed_streak) >= self.settings.sending.max_failed_batches:
                self._give_up(results)
        elif sent:
            self.failed_streak = []

    def _back_off(self, retry: list[SendResult], sent: int) -> None:
        """Pause the whole pool; stop when the provider keeps failing or wants a long wait."""
        asked = max(r.retry_after or 0.0 for r in retry)
        cap = self.policy.max_retry_after
        if asked > cap:
            until = time.strftime("%H:%M", time.localtime(time.time() + asked))
            self.halt = (
                f"the provider asked to wait {asked:.0f} s (until {until}): {retry[0].reason}. "
                "Those recipients are still pending: run the same command again then"
            )
            return
        now = time.monotonic()
        if now >= self.pause_until and not sent:
            # A new round of failures (batches failing within one pause count once).
            self.retry_streak += 1
            if self.retry_streak >= self.max_attempts:
                self.halt = (
                    f"the provider kept failing ({retry[0].reason}); stopped after "
                    f"{self.retry_streak} rounds of retries so as not to burn the list. "
                    "Nothing was lost: those recipients are still pending. Run the same "
                    "command again when the provider is back"
                )
                return
        delay = self.policy.delay(max(self.retry_streak - 1, 0), asked, random.random())
        self.pause_until = max(self.pause_until, now + delay)
        self.progress.waiting_until = time.time() + (self.pause_until - now)

    def _give_up(self, results: list[SendResult]) -> None:
        """The provider refused every message of several batches: stop, keep them pending."""
        ids = [i for batch in self.failed_streak for i in batch]
        reason = results[0].reason if results else "refused"
        recovery.reopen(self.engine, ids, f"send stopped: {reason}")
        self.report.failed -= len(ids)
        self.progress.failed -= len(ids)
        self.error = self.error or RecipientsRejected(
            f"the provider refused every message of the last {len(self.failed_streak)} batches "
            f"({reason}); stopped so as not to burn the list. Fix the cause and run the same "
            "command again: those recipients are still pending",
            provider=self.provider.name,
        )

    # --- before the loop -----------------------------------------------------------------

    def _reap(self) -> int:
        """Rows of senders that died: on the wire, uncertain; never sent, pending again
        (returns how many, for this run to send)."""
        holders = senders_in_flight(self.engine, self.issue)
        holders.pop(self.sender.id, None)
        if not holders:
            return 0
        dead = dead_senders(self.engine, self.issue, holders)
        with self.writing:
            _, returned = recovery.orphan(
                self.engine, self.issue, dead, self.settings.sending.lease
            )
        return returned

    def _settle_uncertain(self, retry_uncertain: bool) -> None:
        """Batches an earlier run lost: resend where that is safe or asked for."""
        for old_attempt, rows in recovery.uncertain_batches(self.engine, self.issue).items():
            if self.provider.idempotent:
                # The same rows make the same batch and the same idempotency key.
                attempt_id = self.sender.attempt_id()
                taken = recovery.reclaim(self.engine, rows, old_attempt, attempt_id)
                if taken:
                    self._send(taken, attempt_id)
            elif retry_uncertain:
                recovery.requeue(self.engine, rows, old_attempt)
