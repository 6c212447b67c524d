"""Resend: POST /emails/batch, up to 100 emails, with an Idempotency-Key per batch.

https://resend.com/docs/dashboard/emails/batch-sending
https://resend.com/docs/dashboard/emails/idempotency-keys
Retrying a batch with the same key and body returns the first answer instead of sending
again (for 24 hours), so a retry after a timeout cannot send twice. Permissive validation
queues the valid emails of a batch and lists the invalid ones by index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from newsletter.compose.message import Message
from newsletter.config import Settings
from newsletter.delivery.providers._http import Endpoint, Reply, finish
from newsletter.delivery.providers._splice import Splicer
from newsletter.delivery.providers.base import Options, SendResult, Status

# Facts from the pages above and https://resend.com/docs/api-reference (with its
# rate-limit and errors pages); the registry in providers/__init__.py is built from them.
NAME = "resend"
BASE_URL = "https://api.resend.com"
KEY_VARIABLE = "RESEND_API_KEY"  # an API key (re_...), sent as Authorization: Bearer
MAX_BATCH = 100  # "up to 100 batch emails at once"
# Bytes one request should carry at most: Resend documents no request limit of its own
# (40 MB a message is only said by third parties), so 8 MB, like the others.
REQUEST_BUDGET = 8_000_000
# Messages a second to the list: 2 requests a second per team by default (rate-limit page),
# 100 emails a request.
DEFAULT_RATE = 100.0
IDEMPOTENT = True  # an Idempotency-Key per batch: a resent batch returns the first answer
SHARES_BODY = False  # every email of a batch carries its whole body
KEY_HINT = f"set {KEY_VARIABLE} or NEWSLETTER_API_KEY to a Resend API key (re_...)"
SANDBOX_ADDRESS = "delivered+{n}@resend.dev"  # Resend's test inbox: accepted, never delivered
# 409 while a request with the same Idempotency-Key is still being processed (errors page):
# nothing was decided yet, so it is worth asking again shortly.
IN_FLIGHT = "concurrent_idempotent_requests"
IN_FLIGHT_WAIT = 1.0


def idempotency_key(scope: str, batch: Sequence[Message]) -> str:
    """The same batch of the same send gets the same key, however often it is retried.

    A header carries printable ASCII only: anything else in the scope (an issue folder
    named in another alphabet) is percent-encoded, so the usual keys stay as they were.
    """
    digest = hashlib.sha256("\n".join(m.message_id for m in batch).encode()).hexdigest()
    return f"{quote(scope, safe=_PRINTABLE)[:150]}/{digest[:64]}"


_PRINTABLE = "".join(map(chr, range(0x20, 0x7F)))


def build_item(m: Message, n: int, sandbox: bool, bodies: bool = True) -> dict[str, Any]:
    """One email of the batch; the bodies go last (the splicer adds them itself)."""
    email: dict[str, Any] = {
        "from": m.sender,
        "to": [SANDBOX_ADDRESS.format(n=n) if sandbox else m.to],
        "subject": m.subject,
        "headers": dict(m.headers),
        "tags": [{"name": "issue", "value": _tag_value(m.issue)}],
    }
    if m.reply_to:
        email["reply_to"] = m.reply_to
    if bodies:
        email.update(html=m.html, text=m.text)
    return email


def build_request(batch: Sequence[Message], *, sandbox: bool) -> list[dict[str, Any]]:
    return [build_item(m, n, sandbox) for n, m in enumerate(batch)]


def _tag_value(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text)[:256]


def parse_response(batch: Sequence[Message], body: Any) -> list[SendResult] | None:
    """Ids come in request order for the emails that were queued; errors name indexes."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return None
    errors = {
        e.get("index"): str(e.get("message", "invalid"))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    }
    ids = iter(body["data"])
    results = []
    for index, message in enumerate(batch):
        email = message.recipient.email
        if index in errors:
            results.append(SendResult(email, Status.REJECTED, reason=f"Resend: {errors[index]}"))
            continue
        item = next(ids, None)
        if not isinstance(item, dict) or "id" not in item:
            return None
        results.append(SendResult(email, Status.SENT, str(item["id"])))
    return results


def in_flight(reply: Reply) -> list[SendResult] | None:
    """RETRY for the whole batch if Resend says the same batch is still in flight."""
    answer = reply.answer
    if reply.results is None or answer is None or answer.status != 409:
        return None
    if not isinstance(answer.body, dict) or answer.body.get("name") != IN_FLIGHT:
        return None
    return [
        SendResult(r.email, Status.RETRY, reason=r.reason, retry_after=IN_FLIGHT_WAIT)
        for r in reply.results
    ]


def create(settings: Settings, options: Options) -> ResendProvider:
    return ResendProvider(options, base_url=settings.provider.base_url)


class ResendProvider:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = IDEMPOTENT
    announces_departure = True  # Endpoint.post calls depart()

    def __init__(self, options: Options, *, base_url: str = "") -> None:
        self.endpoint = Endpoint.at(
            options, base_url or BASE_URL, "/emails/batch", provider="Resend", key_hint=KEY_HINT
        )
        self.options = options
        self.splicer = Splicer()

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        reply = self.endpoint.post(
            batch,
            content=self.splicer.encode(
                batch,
                lambda m, n: build_item(m, n, self.options.sandbox, bodies=False),
                "html",
                "text",
                fast=not self.options.sandbox,  # sandbox addresses go by index
            ),
            headers={
                "Authorization": f"Bearer {self.options.key}",
                "Content-Type": "application/json",
                "Idempotency-Key": idempotency_key(self.options.idempotency_scope, batch),
                "x-batch-validation": "permissive",
            },
        )
        busy = in_flight(reply)
        if busy is not None:
            return busy
        return finish(reply, batch, lambda answer: parse_response(batch, answer.body))
