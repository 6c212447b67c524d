"""The send engine: an issue to every active subscriber, exactly once.

The issue is rendered and inlined once; each recipient costs a join of the pre-split
HTML and text. Batches of the provider's size are claimed in the ledger before their
HTTP call and answered after it, several at a time in a thread pool, paced by a token
bucket. A 429 or 5xx pauses the whole pool; a batch whose answer was lost stays
"uncertain" rather than being sent twice. Stopping (Ctrl-C) lets the batches in flight
finish; running the command again continues where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine

from newsletter.audience.subscribers import iter_subscribers
from newsletter.compose.build import content_hash, load_built
from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.compose.render import Rendered
from newsletter.config import Settings
from newsletter.delivery import ledger
from newsletter.delivery.ledger import Claimed
from newsletter.delivery.providers import (
    PROVIDERS,
    Provider,
    SendResult,
    Status,
    api_key,
    make_provider,
)
from newsletter.delivery.providers._http import make_client
from newsletter.delivery.test_copies import RetryPolicy
from newsletter.delivery.tokens import secret_key, unsubscribe_token
from newsletter.errors import NewsletterError, ProviderError
from newsletter.storage import open_engine


@dataclass
class Progress:
    total: int
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.uncertain

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class Plan:
    issue: str
    subject: str
    provider: str
    audience: int  # messages this run will send, at most
    already_sent: int
    uncertain: int  # lost by an earlier run: resent only with --retry-uncertain
    rate: float
    concurrency: int
    batch_size: int
    resuming: bool

    @property
    def estimate(self) -> float:
        return self.audience / self.rate if self.rate else 0.0


@dataclass
class SendReport:
    issue: str
    provider: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: list[str] = field(default_factory=list)
    stopped: str = ""  # why the run stopped early; empty when it ran to the end
    finished: bool = False  # nothing is left pending or in flight
    dry_run: bool = False
    personalize_us: float = 0.0  # dry run: microseconds per recipient


class TokenBucket:
    """At most `rate` messages a second on average, bursts of up to `capacity`."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, count: int, stop: threading.Event) -> bool:
        """Wait until `count` messages may go; False if stopped while waiting."""
        count = min(count, int(self.capacity))
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= count:
                    self.tokens -= count
                    return True
                wait_for = (count - self.tokens) / self.rate
            if stop.wait(min(wait_for, 0.5)):
                return False


def resolve_rate(settings: Settings, provider: str, rate: float | None) -> float:
    return rate or settings.sending.rate or PROVIDERS[provider].default_rate


def _nobody(segment: str) -> NewsletterError:
    who = f"in segment {segment!r}" if segment else "on the list"
    return NewsletterError(
        f"nobody to send to: no active subscribers {who} "
        "(add some with `newsletter subscribers import`)"
    )


def plan_send(
    settings: Settings,
    folder: Path,
    *,
    environ: Mapping[str, str],
    segment: str = "",
    rate: float | None = None,
    concurrency: int | None = None,
) -> Plan:
    """What `send` would do: to how many, through what, how fast.

    Everything that would stop the send before its first message is checked here: the
    issue builds, the provider is known and has its key, the signing secret is set, and
    somebody is on the list.
    """
    issue, rendered = load_built(settings, folder)
    provider = settings.provider.name
    api_key(provider, environ)
    secret_key(environ, provider)
    if provider != "outbox" and not settings.unsubscribe_url.startswith("https://"):
        raise NewsletterError(
            f"unsubscribe links must be https:// for one-click unsubscribe (RFC 8058), not "
            f"{settings.unsubscribe_url}; set unsubscribe_url or site_url in newsletter.toml"
        )
    engine = open_engine(settings)
    try:
        record = ledger.find_send(engine, issue.key)
        uncertain = 0
        if record is None:
            audience, sent = ledger.count_audience(engine, segment), 0
            if audience == 0:
                raise _nobody(segment)
        else:
            status = ledger.ledger_status(engine, issue.key, settings.sending.lease)
            audience, sent = status.counts["pending"], status.counts["sent"]
            uncertain = status.counts["uncertain"]
    finally:
        engine.dispose()
    return Plan(
        issue=issue.key,
        subject=rendered.subject,
        provider=provider,
        audience=audience,
        already_sent=sent,
        uncertain=uncertain,
        rate=resolve_rate(settings, provider, rate),
        concurrency=concurrency or settings.sending.concurrency,
        batch_size=batch_size(settings, provider, rendered),
        resuming=record is not None,
    )


# A request carries about this much at most: a batch of 500 fifty-kilobyte messages would
# be 26 MB of JSON, and several of those in flight cost more memory than they gain speed.
REQUEST_BUDGET = 8_000_000


def batch_size(settings: Settings, provider: str, rendered: Rendered | None = None) -> int:
    """The provider's batch limit, or less if configured, or if messages are large."""
    size = PROVIDERS[provider].max_batch
    if settings.sending.batch_size:
        size = min(size, settings.sending.batch_size)
    if rendered is not None:
        per_message = len(rendered.html.encode()) + len(rendered.text.encode()) + 2048
        size = min(size, max(1, REQUEST_BUDGET // per_message))
    return size


@contextlib.contextmanager
def _sender_lock(settings: Settings, engine: Engine, issue: str) -> Iterator[None]:
    """On SQLite one sender per issue: a second one is refused, not interleaved."""
    if engine.dialect.name != "sqlite":
        yield
        return
    import fcntl

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / f"send-{issue}.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise NewsletterError(
                f"another newsletter send is working on {issue} ({holder}); wait for it to "
                "finish, or stop it (its batches in flight finish first)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Personalizer:
    """Messages for claimed rows: the issue's pre-split parts joined per recipient."""

    def __init__(self, settings: Settings, issue: str, rendered: Rendered, secret: str) -> None:
        self.settings = settings
        self.issue = issue
        self.rendered = rendered
        self.secret = secret
        self.base = settings.unsubscribe_url

    def message(self, subscriber_id: int, email: str, name: str) -> Message:
        token = unsubscribe_token(subscriber_id, self.issue, self.secret)
        recipient = Recipient(email=email, name=name, unsubscribe_url=f"{self.base}?token={token}")
        return build_message(self.settings, self.issue, self.rendered, recipient)


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
    transport: httpx.BaseTransport | None = None,
) -> SendReport:
    """Send an issue to the list through the ledger; see the module docstring."""
    stop = stop or threading.Event()
    issue, rendered = load_built(settings, folder)
    provider_name = settings.provider.name
    secret = secret_key(environ, provider_name)
    personalizer = _Personalizer(settings, issue.key, rendered, secret)
    engine = open_engine(settings)
    try:
        if dry_run:
            return _dry_run(engine, settings, issue.key, segment, personalizer, provider_name)
        with _sender_lock(settings, engine, issue.key):
            record = ledger.find_send(engine, issue.key)
            if record is None and ledger.count_audience(engine, segment) == 0:
                raise _nobody(segment)
            with make_client(settings.provider.timeout, transport) as client:
                provider = make_provider(
                    settings, client=client, environ=environ, idempotency_scope=issue.key
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
                    personalizer,
                    stop,
                    progress,
                    rate=resolve_rate(settings, provider_name, rate),
                    concurrency=concurrency or settings.sending.concurrency,
                    batch_size=batch_size(settings, provider_name, rendered),
                )
                report = run.go(retry_uncertain)
            report.finished = ledger.finish(engine, issue.key)
            status = ledger.ledger_status(engine, issue.key, settings.sending.lease)
            report.uncertain = status.uncertain
            return report
    finally:
        engine.dispose()


def _dry_run(
    engine: Engine,
    settings: Settings,
    issue: str,
    segment: str,
    personalizer: _Personalizer,
    provider: str,
) -> SendReport:
    """Personalize every message the send would make; send none, write nothing."""
    report = SendReport(issue, provider, dry_run=True)
    record = ledger.find_send(engine, issue)
    started = time.perf_counter()
    count = 0
    if record is None:
        for s in iter_subscribers(engine, status="active", segment=segment or None):
            personalizer.message(s.id, s.email, s.name)
            count += 1
        if count == 0:
            raise _nobody(segment)
    else:
        for row in ledger.pending_rows(engine, issue):
            personalizer.message(row.subscriber_id, row.email, row.name)
            count += 1
    elapsed = time.perf_counter() - started
    report.sent = count
    report.personalize_us = elapsed / count * 1e6 if count else 0.0
    return report


class _Run:
    """One process's share of a send: claim, send, record, until nothing is left."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        issue: str,
        provider: Provider,
        personalizer: _Personalizer,
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
        self.personalizer = personalizer
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
        in_flight: dict[Future[list[SendResult]], tuple[list[Claimed], str]] = {}
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
        self,
        pool: ThreadPoolExecutor,
        in_flight: dict[Future[list[SendResult]], tuple[list[Claimed], str]],
    ) -> bool:
        attempt_id = uuid.uuid4().hex
        claimed = ledger.claim(self.engine, self.issue, self.batch_size, attempt_id)
        if not claimed:
            return False
        messages = [self.personalizer.message(c.subscriber_id, c.email, c.name) for c in claimed]
        if not self.bucket.take(len(messages), self.stop):
            ledger.release(self.engine, claimed, attempt_id, "stopped before sending")
            return False
        in_flight[pool.submit(self.provider.send, messages)] = (claimed, attempt_id)
        return True

    def _answer(
        self, future: Future[list[SendResult]], claimed: list[Claimed], attempt_id: str
    ) -> None:
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
        if any(r.status is Status.UNCERTAIN for r in results) and self.provider.idempotent:
            # The batch's idempotency key makes resending it safe.
            results = [
                SendResult(r.email, Status.RETRY, reason=r.reason)
                if r.status is Status.UNCERTAIN
                else r
                for r in results
            ]
        lost = [
            (c, r) for c, r in zip(claimed, results, strict=True) if r.status is Status.UNCERTAIN
        ]
        if lost:
            ledger.mark_uncertain(self.engine, [c for c, _ in lost], attempt_id, lost[0][1].reason)
            self.progress.uncertain += len(lost)
        answered = [
            (c, r)
            for c, r in zip(claimed, results, strict=True)
            if r.status is not Status.UNCERTAIN
        ]
        ledger.record(
            self.engine,
            [c for c, _ in answered],
            [r for _, r in answered],
            attempt_id,
            self.max_attempts,
        )
        self._count(claimed, results)

    def _count(self, claimed: list[Claimed], results: list[SendResult]) -> None:
        sent = sum(r.status is Status.SENT for r in results)
        retry = [r for r in results if r.status is Status.RETRY]
        refused = [
            c.id
            for c, r in zip(claimed, results, strict=True)
            if r.status in (Status.REJECTED, Status.FAILED)
            or (r.status is Status.RETRY and c.attempt >= self.max_attempts)
        ]
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
        self.error = NewsletterError(
            f"the provider refused every message of the last {len(self.failed_streak)} batches "
            f"({reason}); stopped so as not to burn the list. Fix the cause and run the same "
            "command again: those recipients are still pending"
        )

    def _settle_uncertain(self, retry_uncertain: bool) -> None:
        """Batches an earlier run lost: resend where that is safe or asked for."""
        batches = ledger.uncertain_batches(self.engine, self.issue, self.settings.sending.lease)
        for old_attempt, rows in batches.items():
            if self.provider.idempotent:
                # The same rows make the same batch and the same idempotency key.
                attempt_id = uuid.uuid4().hex
                taken = ledger.reclaim(self.engine, rows, old_attempt, attempt_id)
                if taken:
                    messages = [
                        self.personalizer.message(c.subscriber_id, c.email, c.name) for c in taken
                    ]
                    future: Future[list[SendResult]] = Future()
                    try:
                        future.set_result(self.provider.send(messages))
                    except Exception as exc:  # noqa: BLE001 - handled by _answer
                        future.set_exception(exc)
                    self._answer(future, taken, attempt_id)
            elif retry_uncertain:
                ledger.requeue(self.engine, rows, old_attempt)
