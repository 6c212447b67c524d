"""Test copies: an issue to a few editors, "[TEST] " in the subject, never in the ledger.

`deliver` owns what the provider adapters do not: splitting into batches of the provider's
size, retrying what the provider said to retry (honouring Retry-After, with capped,
jittered exponential backoff; see pacing) and turning every message into a final result.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.audience.addresses import address_key, parse_mailbox
from newsletter.audience.subscribers import get_subscriber
from newsletter.compose.build import load_built
from newsletter.compose.fields import has_database, personal
from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient
from newsletter.config import Settings
from newsletter.delivery.connect import open_provider
from newsletter.delivery.pacing import RetryPolicy
from newsletter.delivery.providers import Provider, SendResult, Status
from newsletter.errors import SubscriberError
from newsletter.storage import open_engine

TEST_PREFIX = "[TEST] "


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


def _own_fields(settings: Settings, addresses: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The personal fields of each address that is on the list; the others get defaults."""
    if not has_database(settings):
        return {}
    engine = open_engine(settings)
    try:
        found = {a: get_subscriber(engine, a) for a in addresses}
    finally:
        engine.dispose()
    return {a: personal(s.fields) for a, s in found.items() if s is not None}


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
    provider: Provider | None = None,
    policy: RetryPolicy | None = None,
) -> TestSend:
    """Send test copies of an issue: "[TEST] " subject, sample values, never the ledger.

    `provider` defaults to the configured one (or `provider_name`), with its own client.
    """
    # Each typed once per person: "ME@x" and "me@x" are one inbox, and a display name
    # given with an address ("Zoë Ngata <zoe@example.org>") is the sample reader's name.
    mailboxes: dict[str, tuple[str, str]] = {}
    for text in to:
        name, address = parse_mailbox(text)
        mailboxes.setdefault(address_key(address), (name, address))
    if not mailboxes:
        raise SubscriberError("no recipients: give --to ADDRESS at least once")
    issue, rendered = load_built(settings, folder)
    run = uuid.uuid4().hex[:12]
    fields = _own_fields(settings, [a for _, a in mailboxes.values()]) if rendered.slots else {}
    messages = [
        build_message(
            settings,
            issue.key,
            rendered,
            Recipient(
                email=address,
                name=name or "Test Reader",
                unsubscribe_url=f"{settings.unsubscribe_url}?token=test",
                fields=fields.get(address, {}),
            ),
            subject_prefix=TEST_PREFIX,
            id_variant=f"test-{run}",
        )
        for name, address in mailboxes.values()
    ]
    policy = policy or RetryPolicy(
        attempts=settings.provider.retries, base_delay=settings.provider.retry_delay
    )
    with contextlib.ExitStack() as stack:
        if provider is None:
            provider = stack.enter_context(
                open_provider(
                    settings,
                    environ=environ,
                    name=provider_name,
                    sandbox=sandbox,
                    # a fresh scope per run: retries within it are idempotent, a new run
                    # sends again
                    idempotency_scope=f"test-{issue.key}-{run}",
                )
            )
        results = deliver(provider, messages, policy)
    return TestSend(provider.name, messages[0].subject, results)
