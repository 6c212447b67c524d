"""SendGrid v3 Mail Send: POST /v3/mail/send with up to 1000 personalizations.

https://www.twilio.com/docs/sendgrid/api-reference/mail-send
One request carries one body for the whole batch; per-recipient fields travel as
substitutions and per-recipient headers in each personalization. Success is 202 with
an empty body and an X-Message-Id header (200 in sandbox mode).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

import httpx
import orjson

from newsletter.compose.message import Message
from newsletter.delivery.providers._http import Secrets, exchange, unreadable
from newsletter.delivery.providers._merge import merge_values, shared_body
from newsletter.delivery.providers.base import SendResult, Status

BASE_URL = "https://api.sendgrid.com"
MAX_BATCH = 1000  # personalizations maxItems, and at most 1000 recipients per request
KEY_HINT = "set SENDGRID_API_KEY or NEWSLETTER_API_KEY to an API key with Mail Send access"
_PERSONALIZATION = re.compile(r"personalizations\.(\d+)")


def tag(field: str) -> str:
    return f"-nl-{field}-"


def _mailbox(text: str) -> dict[str, str]:
    name, addr = parseaddr(text)
    # "to.name cannot contain ; or ," (Mail Send limitations)
    name = name.replace(";", " ").replace(",", " ").strip()
    return {"email": addr, "name": name} if name else {"email": addr}


def build_request(
    batch: Sequence[Message], *, sandbox: bool, merged: bool
) -> tuple[dict[str, Any], str, str]:
    """The request body; with merged=False the batch must hold a single message."""
    first = batch[0]
    shared = shared_body(batch, tag) if merged else None
    html, text = shared or (first.html, first.text)
    personalizations = []
    for message in batch:
        item: dict[str, Any] = {
            "to": [_mailbox(message.to)],
            "headers": dict(message.headers),
            "custom_args": {"issue": message.issue},
        }
        if shared:
            item["substitutions"] = {tag(k): v for k, v in merge_values(message).items()}
        personalizations.append(item)
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": _mailbox(first.sender),
        "subject": first.subject,
        # text/plain must come before text/html
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "mail_settings": {"sandbox_mode": {"enable": sandbox}},
        "tracking_settings": {
            "click_tracking": {"enable": False},
            "open_tracking": {"enable": False},
            "subscription_tracking": {"enable": False},
        },
    }
    if first.reply_to:
        body["reply_to"] = _mailbox(first.reply_to)
    return body, html, text


def parse_response(
    batch: Sequence[Message], response: httpx.Response, sandbox: bool
) -> list[SendResult] | None:
    """202 Accepted (200 in sandbox mode) with X-Message-Id; anything else is not SendGrid."""
    if response.status_code != 202 and not (sandbox and response.status_code == 200):
        return None
    message_id = response.headers.get("x-message-id", "")
    return [SendResult(m.recipient.email, Status.SENT, message_id) for m in batch]


def blame(batch: Sequence[Message], results: list[SendResult]) -> list[SendResult]:
    """A 400 names the personalizations at fault; the others are sent again without them."""
    bad = {int(n) for r in results[:1] for n in _PERSONALIZATION.findall(r.reason)}
    if not bad or any(n >= len(batch) for n in bad):
        return results
    return [
        r
        if i in bad
        else SendResult(r.email, Status.RETRY, reason="resent without a refused address",
                        retry_after=0.0)
        for i, r in enumerate(results)
    ]  # fmt: skip


class SendGridProvider:
    name = "sendgrid"
    max_batch = MAX_BATCH
    idempotent = False

    def __init__(
        self, client: httpx.Client, key: str, *, base_url: str = "", sandbox: bool = False
    ) -> None:
        self.client = client
        self.key = key
        self.url = (base_url or BASE_URL).rstrip("/") + "/v3/mail/send"
        self.sandbox = sandbox
        self.secrets = Secrets(key)

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        if shared_body(batch, tag) is None and len(batch) > 1:
            return [result for m in batch for result in self._post([m], merged=False)]
        return self._post(batch, merged=True)

    def _post(self, batch: Sequence[Message], merged: bool) -> list[SendResult]:
        body, _, _ = build_request(batch, sandbox=self.sandbox, merged=merged)
        reply = exchange(
            self.client,
            "POST",
            self.url,
            batch,
            provider="SendGrid",
            key_hint=KEY_HINT,
            secrets=self.secrets,
            content=orjson.dumps(body),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        if reply.results is not None:
            if reply.results and reply.results[0].status is Status.REJECTED:
                return blame(batch, reply.results)
            return reply.results
        assert reply.response is not None
        results = parse_response(batch, reply.response, self.sandbox)
        if results is None:
            return unreadable("SendGrid", reply.response, batch).results or []
        return results
