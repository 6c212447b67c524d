"""What every provider is: a name, a batch size, and send(batch) -> one result per message.

Also what a provider module's `create` factory is given besides the settings (`Options`),
so that each adapter module can build its own provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

import httpx

from newsletter.compose.message import Message


class Status(StrEnum):
    SENT = "sent"  # the provider accepted it; message_id says under which id
    RETRY = "retry"  # try again later (429, 5xx, timeout, dropped connection)
    REJECTED = "rejected"  # the provider refused it; reason says why
    FAILED = "failed"  # still refused or unreachable after every retry
    # The request went out but no answer came back (timeout, dropped connection): it may
    # have been sent. Retrying could send twice unless the provider is idempotent.
    UNCERTAIN = "uncertain"


class SendResult(NamedTuple):
    """One message's outcome (a tuple: one per message of every batch)."""

    email: str
    status: Status
    message_id: str = ""
    reason: str = ""
    retry_after: float | None = None


class Provider(Protocol):
    """A provider; one whose `send` calls `depart()` just before its request leaves also
    says so with a class attribute `announces_departure = True` (the engine otherwise
    notes the batch as leaving before calling `send`)."""

    name: str
    max_batch: int
    # True when resending a batch cannot deliver it twice (an idempotency key per batch).
    idempotent: bool

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        """Send up to max_batch messages; exactly one result per message, in order."""
        ...


# What the engine does the moment a batch leaves (it notes its rows as on the wire): set
# for the duration of one `send` in the thread that makes it.
_departing: ContextVar[Callable[[], None] | None] = ContextVar("departing", default=None)


@contextmanager
def departing(hook: Callable[[], None]) -> Iterator[None]:
    """Run `hook` when the adapter's request for this batch is about to leave."""
    token = _departing.set(hook)
    try:
        yield
    finally:
        _departing.reset(token)


def depart() -> None:
    """The batch is encoded and its request leaves now: a sender killed before this
    point sent nothing of it, one killed after may have sent it all."""
    hook = _departing.get()
    if hook is not None:
        hook()


@dataclass(frozen=True)
class Options:
    """What a provider factory gets besides the settings.

    `secrets` are every secret value in the environment (the key among them, the signing
    secret, other providers' keys): the provider takes them out of all it reports.
    """

    client: httpx.Client
    key: str
    sandbox: bool = False
    idempotency_scope: str = "newsletter"
    secrets: tuple[str, ...] = ()


def same_result(
    batch: Sequence[Message],
    status: Status,
    reason: str,
    retry_after: float | None = None,
) -> list[SendResult]:
    """One outcome for a whole batch (the request as a whole failed)."""
    return [
        SendResult(m.recipient.email, status, reason=reason, retry_after=retry_after) for m in batch
    ]
