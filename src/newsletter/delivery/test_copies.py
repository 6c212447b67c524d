"""Sending: batches to a provider, retries, and test sends.

`deliver` owns what the provider adapters do not: splitting into batches of the provider's
size, retrying what the provider said to retry (honouring Retry-After, with capped,
jittered exponential backoff) and turning every message into a final result.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from newsletter.audience.addresses import check_address
from newsletter.compose.build import load_built
from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.config import Settings
from newsletter.delivery.providers import Provider, SendResult, Status, make_provider
from newsletter.delivery.providers._http import make_client
from newsletter.errors import SubscriberError

TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    # A provider asking for a longer pause than this gets the message marked failed.
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        """Seconds before retry number `attempt` (0-based); jitter is in [0, 1)."""
        backoff = min(self.max_delay, self.base_delay * 2.0**attempt) * (0.5 + jitter / 2)
        return max(backoff, retry_after or 0.0)


def deliver(
    provider: Provider,
    messages: Sequence[Message],
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> list[SendResult]:
    """Send every message; return one final result each (sent, rejected or failed).

    For test sends: an uncertain answer is retried, so a test copy may arrive twice.
    Sending to the list goes through the ledger instead (engine.py).
    """
    policy = policy or RetryPolicy()
    final: dict[int, SendResult] = {}
    pending = list(range(len(messages)))
    for attempt in range(policy.attempts):
        again: list[int] = []
        waits: list[float] = []
        for start in range(0, len(pending), provider.max_batch):
            chunk = pending[start : start + provider.max_batch]
            results = provider.send([messages[i] for i in chunk])
            for index, result in zip(chunk, results, strict=True):
                final[index] = result
                # A test copy sent twice harms nobody: uncertain is retried here.
                if result.status in (Status.RETRY, Status.UNCERTAIN):
                    again.append(index)
                    waits.append(result.retry_after or 0.0)
        pending = again
        if not pending:
            break
        wait = max(waits)
        if wait > policy.max_retry_after or attempt == policy.attempts - 1:
            break
        sleep(policy.delay(attempt, wait, jitter()))
    for index in pending:
        last = final[index]
        final[index] = SendResult(
            last.email,
            Status.FAILED,
            reason=f"gave up after {policy.attempts} attempts: {last.reason}"
            if (last.retry_after or 0) <= policy.max_retry_after
            else f"the provider asked to wait {last.retry_after:.0f} s: {last.reason}",
        )
    return [final[i] for i in range(len(messages))]


@dataclass(frozen=True)
class TestSend:
    provider: str
    subject: str
    results: list[SendResult]


def send_test(
    settings: Settings,
    folder: Path,
    to: Sequence[str],
    *,
    environ: Mapping[str, str],
    provider_name: str | None = None,
    sandbox: bool = False,
    transport: httpx.BaseTransport | None = None,
    policy: RetryPolicy | None = None,
) -> TestSend:
    """Send test copies of an issue: "[TEST] " subject, sample values, never the ledger."""
    addresses = list(dict.fromkeys(check_address(a) for a in to))
    if not addresses:
        raise SubscriberError("no recipients: give --to ADDRESS at least once")
    issue, rendered = load_built(settings, folder)
    run = uuid.uuid4().hex[:12]
    messages = [
        build_message(
            settings,
            issue.key,
            rendered,
            Recipient(
                email=address,
                name="Test Reader",
                unsubscribe_url=f"{settings.unsubscribe_url}?token=test",
            ),
            subject_prefix=TEST_PREFIX,
            id_variant=f"test-{run}",
        )
        for address in addresses
    ]
    with make_client(settings.provider.timeout, transport) as client:
        provider = make_provider(
            settings,
            provider_name,
            client=client,
            environ=environ,
            sandbox=sandbox,
            # a fresh scope per run: retries within it are idempotent, a new run sends again
            idempotency_scope=f"test-{issue.key}-{run}",
        )
        policy = policy or RetryPolicy(
            attempts=settings.provider.retries, base_delay=settings.provider.retry_delay
        )
        results = deliver(provider, messages, policy)
    return TestSend(provider.name, messages[0].subject, results)
