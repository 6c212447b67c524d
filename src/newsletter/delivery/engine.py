"""The send engine: an issue to every active subscriber, exactly once.

The issue is rendered and inlined once; each recipient costs a join of the pre-split
HTML and text (see the package docstring). Batches of the provider's size are claimed
in the ledger before their HTTP call and answered after it, several at a time in a
thread pool, paced by a token bucket (pacing). A 429 or 5xx pauses the whole pool; a
batch whose answer was lost becomes "uncertain" rather than being sent twice. Stopping
(Ctrl-C) lets the batches in flight finish; running the command again continues where
it stopped.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from sqlalchemy import Engine

from newsletter.audience.subscribers import count_audience
from newsletter.compose.build import content_hash, load_built
from newsletter.config import Settings
from newsletter.delivery import ledger
from newsletter.delivery.addressing import Addresser
from newsletter.delivery.connect import open_provider
from newsletter.delivery.dry_run import dry_run as run_dry
from newsletter.delivery.ledger import Answer, Claimed, State
from newsletter.delivery.lock import sender_lock
from newsletter.delivery.pacing import RetryPolicy, TokenBucket
from newsletter.delivery.plan import batch_size, nobody, resolve_rate
from newsletter.delivery.providers import Provider, SendResult, Status
from newsletter.delivery.report import Progress, SendReport
from newsletter.delivery.status import ledger_status
from newsletter.delivery.tokens import secret_key
from newsletter.errors import NewsletterError, ProviderError, RecipientsRejected
from newsletter.storage import open_engine

__all__ = ["Progress", "SendReport", "send_issue"]

Batch = Future[list[SendResult]]


def send_issue(
    settings: Settings,
    folder: Path,
    *,
    environ: Mapping[str, str],
    segment: str = "",
    rate: float | None = None,
    concurrency: int | None = None,
    retry_uncertain: bool = False,
    allow_changed: bool = False,
    dry_run: bool = False,
    progress: Callable[[Progress], None] | None = None,
    stop: threading.Event | None = None,
    provider: Provider | None = None,
) -> SendReport:
    """Send an issue to the list through the ledger; see the module docstring.

    `provider` defaults to the configured one, with a client of its own for this send.
    """
    if dry_run:
        return run_dry(settings, folder, environ=environ, segment=segment)
    stop = stop or threading.Event()
    issue, rendered = load_built(settings, folder)
    provider_name = provider.name if provider else settings.provider.name
    addresser = Addresser(settings, issue.key, rendered, secret_key(environ, provider_name))
    engine = open_engine(settings)
    try:
        with sender_lock(settings, engine, issue.key), contextlib.ExitStack() as stack:
            if ledger.find_send(engine, issue.key) is None and not count_audience(engine, segment):
                raise nobody(segment)
            if provider is None:
                provider = stack.enter_context(
                    open_provider(settings, environ=environ, idempotency_scope=issue.key)
                )
            ledger.start_send(
                engine,
                issue.key,
                content_hash(rendered),
                segment=segment,
                provider=provider_name,
                allow_changed=allow_changed,
            )
            run = _Run(
                settings,
                engine,
                issue.key,
                provider,
                addresser,
                stop,
                progress,
                rate=resolve_rate(settings, provider_name, rate),
                concurrency=concurrency or settings.sending.concurrency,
                batch_size=batch_size(settings, provider_name, rendered),
            )
            report = run.go(retry_uncertain)
        report.finished = ledger.finish(engine, issue.key)
        report.uncertain = ledger_status(engine, issue.key, settings.sending.lease).uncertain
        return report
    finally:
        engine.dispose()


def settle(
    claimed: Sequence[Claimed], results: Sequence[SendResult], max_attempts: int
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
        elif r.status is Status.RETRY and row.attempt >= max_attempts:
            reason = f"gave up after {row.attempt} attempts: {r.reason}"
            answers.append(Answer(row, State.FAILED, error=reason))
        elif r.status is Status.RETRY:
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
        self.stop = stop
        self.on_progress = progress
        self.bucket = TokenBucket(rate, max(rate, batch_size))
        self.concurrency = concurrency
        self.batch_size = min(batch_size, provider.max_batch)
        self.max_attempts = settings.provider.retries
        self.policy = RetryPolicy(
            attempts=settings.provider.retries, base_delay=settings.provider.retry_delay
        )
        self.report = SendReport(issue, provider.name)
        self.progress = Progress(total=ledger.pending_count(engine, issue))
        self.pause_until = 0.0
        self.retry_streak = 0
        self.failed_streak: list[list[int]] = []
        self.error: NewsletterError | None = None

    def go(self, retry_uncertain: bool) -> SendReport:
        self._settle_uncertain(retry_uncertain)
        self.progress.total = ledger.pending_count(self.engine, self.issue) + self.progress.done
        in_flight: dict[Batch, tuple[list[Claimed], str]] = {}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="send") as pool:
            while True:
                drained = False
                if not self._should_stop() and len(in_flight) < self.concurrency:
                    if self._pause():
                        if self._submit(pool, in_flight):
                            continue  # fill the free slots first
                        drained = True  # nothing pending that is not already in flight
                if not in_flight:
                    if self._should_stop() or drained:
                        break
                    continue
                done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    claimed, attempt_id = in_flight.pop(future)
                    self._answer(future, claimed, attempt_id)
        if self.error is not None:
            raise self.error
        return self.report

    def _should_stop(self) -> bool:
        if self.stop.is_set() and not self.report.stopped:
            self.report.stopped = "stopped on request; run the same command to continue"
        return self.stop.is_set() or self.error is not None

    def _pause(self) -> bool:
        """Wait out a pool-wide pause (429 or 5xx); False if stopped meanwhile."""
        delay = self.pause_until - time.monotonic()
        return delay <= 0 or not self.stop.wait(delay)

    def _submit(
        self, pool: ThreadPoolExecutor, in_flight: dict[Batch, tuple[list[Claimed], str]]
    ) -> bool:
        attempt_id = uuid.uuid4().hex
        claimed = ledger.claim(self.engine, self.issue, self.batch_size, attempt_id)
        if not claimed:
            return False
        messages = [self.addresser.message(c.subscriber_id, c.email, c.name) for c in claimed]
        if not self.bucket.take(len(messages), self.stop):
            ledger.release(self.engine, claimed, attempt_id, "stopped before sending")
            return False
        in_flight[pool.submit(self.provider.send, messages)] = (claimed, attempt_id)
        return True

    def _answer(self, future: Batch, claimed: list[Claimed], attempt_id: str) -> None:
        try:
            results = future.result()
        except ProviderError as exc:  # the key was refused: nothing in this batch went out
            ledger.release(self.engine, claimed, attempt_id, str(exc))
            self.error = self.error or exc
            return
        except Exception:
            # A bug, not an answer: the rows may have gone out, so they stay uncertain.
            ledger.mark_uncertain(self.engine, claimed, attempt_id, "the sender crashed")
            raise
        if self.provider.idempotent:
            # The batch's idempotency key makes resending a lost batch safe.
            results = [
                SendResult(r.email, Status.RETRY, reason=r.reason)
                if r.status is Status.UNCERTAIN
                else r
                for r in results
            ]
        answers, lost, reason = settle(claimed, results, self.max_attempts)
        if lost:
            ledger.mark_uncertain(self.engine, lost, attempt_id, reason)
            self.progress.uncertain += len(lost)
        ledger.record(self.engine, answers, attempt_id)
        self._count(answers, results)

    def _count(self, answers: list[Answer], results: list[SendResult]) -> None:
        sent = sum(a.state is State.SENT for a in answers)
        refused = [a.row.id for a in answers if a.state is State.FAILED]
        retry = [r for r in results if r.status is Status.RETRY]
        self.report.sent += sent
        self.progress.sent += sent
        self.report.failed += len(refused)
        self.progress.failed += len(refused)
        if retry:
            waits = [r.retry_after or 0.0 for r in retry]
            delay = self.policy.delay(self.retry_streak, max(waits), random.random())
            self.pause_until = max(self.pause_until, time.monotonic() + delay)
            self.retry_streak += 1
        elif sent:
            self.retry_streak = 0
        if sent == 0 and not retry and len(refused) == len(results):
            self.failed_streak.append(refused)
            if len(self.failed_streak) >= self.settings.sending.max_failed_batches:
                self._give_up(results)
        elif sent:
            self.failed_streak = []
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _give_up(self, results: list[SendResult]) -> None:
        """The provider refused every message of several batches: stop, keep them pending."""
        ids = [i for batch in self.failed_streak for i in batch]
        reason = results[0].reason if results else "refused"
        ledger.reopen(self.engine, ids, f"send stopped: {reason}")
        self.report.failed -= len(ids)
        self.progress.failed -= len(ids)
        self.error = RecipientsRejected(
            f"the provider refused every message of the last {len(self.failed_streak)} batches "
            f"({reason}); stopped so as not to burn the list. Fix the cause and run the same "
            "command again: those recipients are still pending",
            provider=self.provider.name,
        )

    def _settle_uncertain(self, retry_uncertain: bool) -> None:
        """Batches an earlier run lost: resend where that is safe or asked for."""
        ledger.expire_overdue(self.engine, self.issue, self.settings.sending.lease)
        for old_attempt, rows in ledger.uncertain_batches(self.engine, self.issue).items():
            if self.provider.idempotent:
                # The same rows make the same batch and the same idempotency key.
                attempt_id = uuid.uuid4().hex
                taken = ledger.reclaim(self.engine, rows, old_attempt, attempt_id)
                if taken:
                    messages = [
                        self.addresser.message(c.subscriber_id, c.email, c.name) for c in taken
                    ]
                    future: Batch = Future()
                    try:
                        future.set_result(self.provider.send(messages))
                    except Exception as exc:  # noqa: BLE001 - handled by _answer
                        future.set_exception(exc)
                    self._answer(future, taken, attempt_id)
            elif retry_uncertain:
                ledger.requeue(self.engine, rows, old_attempt)
