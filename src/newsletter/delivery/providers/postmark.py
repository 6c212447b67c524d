"""Postmark: POST /email/batch, up to 500 messages, one JSON result per message.

https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
The batch answers 200 even when some messages in it failed, so every item's ErrorCode is
read. Broadcast mail goes through a broadcast message stream ("broadcast" by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from newsletter.compose.message import Message
from newsletter.config import Settings
from newsletter.delivery.providers._http import Endpoint, finish
from newsletter.delivery.providers._splice import Splicer
from newsletter.delivery.providers.base import Options, SendResult, Status

# Facts from https://postmarkapp.com/developer/api/overview (API overview) and the batch
# page above; the registry in providers/__init__.py is built from them.
NAME = "postmark"
BASE_URL = "https://api.postmarkapp.com"
KEY_VARIABLE = "POSTMARK_SERVER_TOKEN"  # a server token, sent as X-Postmark-Server-Token
MAX_BATCH = 500  # "up to 500 messages" per /email/batch call
# Bytes one request should carry at most: Postmark takes 50 MB a batch and 10 MB a message
# (the overview's HTTP 413); 8 MB keeps a batch of big messages well under both.
REQUEST_BUDGET = 8_000_000
# Messages a second to the list: Postmark publishes no number, only that it may answer
# 429 (overview); a conservative start that settings can raise.
DEFAULT_RATE = 50.0
IDEMPOTENT = False  # no idempotency key is documented: a batch sent again may deliver twice
SHARES_BODY = False  # every message of a batch carries its whole body
TEST_TOKEN = "POSTMARK_API_TEST"  # validates without delivering
KEY_HINT = f"set {KEY_VARIABLE} or NEWSLETTER_API_KEY to a server token"
# ErrorCodes worth retrying; 429 "rate limit exceeded" can also come back per item.
RETRY_CODES = {429}


def build_item(m: Message, message_stream: str, bodies: bool = True) -> dict[str, Any]:
    """One message of the batch; the bodies go last (the splicer adds them itself)."""
    item: dict[str, Any] = {
        "From": m.sender,
        "To": m.to,
        "Subject": m.subject,
        **({"ReplyTo": m.reply_to} if m.reply_to else {}),
        "Headers": [{"Name": k, "Value": v} for k, v in m.headers.items()],
        "MessageStream": message_stream,
        "Metadata": {"issue": m.issue},
        "TrackOpens": False,
        "TrackLinks": "None",
    }
    if bodies:
        item.update(HtmlBody=m.html, TextBody=m.text)
    return item


def build_request(batch: Sequence[Message], message_stream: str) -> list[dict[str, Any]]:
    return [build_item(m, message_stream) for m in batch]


def parse_response(batch: Sequence[Message], body: Any) -> list[SendResult] | None:
    """One result per item, or None if the answer is not Postmark's array of results."""
    if not isinstance(body, list) or len(body) != len(batch):
        return None
    results = []
    for message, item in zip(batch, body, strict=True):
        if not isinstance(item, dict):
            return None
        code = item.get("ErrorCode")
        email = message.recipient.email
        if code == 0:
            results.append(SendResult(email, Status.SENT, str(item.get("MessageID", ""))))
        else:
            status = Status.RETRY if code in RETRY_CODES else Status.REJECTED
            text = f"Postmark: {item.get('Message', 'no message')} (ErrorCode {code})"
            results.append(SendResult(email, status, reason=text))
    return results


def create(settings: Settings, options: Options) -> PostmarkProvider:
    p = settings.provider
    return PostmarkProvider(options, base_url=p.base_url, message_stream=p.message_stream)


class PostmarkProvider:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = IDEMPOTENT
    announces_departure = True  # Endpoint.post calls depart()

    def __init__(
        self, options: Options, *, base_url: str = "", message_stream: str = "broadcast"
    ) -> None:
        self.endpoint = Endpoint.at(
            options, base_url or BASE_URL, "/email/batch", provider="Postmark", key_hint=KEY_HINT
        )
        self.token = TEST_TOKEN if options.sandbox else options.key
        self.message_stream = message_stream
        self.splicer = Splicer()

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        reply = self.endpoint.post(
            batch,
            content=self.splicer.encode(
                batch,
                lambda m, n: build_item(m, self.message_stream, bodies=False),
                "HtmlBody",
                "TextBody",
            ),
            headers={
                "X-Postmark-Server-Token": self.token,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
        )
        return finish(reply, batch, lambda answer: parse_response(batch, answer.body))
