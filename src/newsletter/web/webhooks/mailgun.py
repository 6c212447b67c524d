"""Mailgun: one JSON event per POST, the signature inside the body.

https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}: the signature
is the hex HMAC-SHA256 of timestamp + token with the webhook signing key
(MAILGUN_WEBHOOK_SIGNING_KEY). It does not cover event-data, so Mailgun advises to
refuse a token seen before: a token is remembered with a digest of its body for the
window, and the same token with another body is refused (one process's memory: with
several workers a token could be reused once per worker, within 5 minutes).

Events (https://documentation.mailgun.com/docs/mailgun/user-manual/events/event-types):
failed with severity permanent (a bounce, or an address Mailgun suppresses) or temporary,
complained, unsubscribed. The send's v:issue comes back in user-variables
(delivery/providers/mailgun.py); event ids are unique only within a day, so the key
joins the id to the event's timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from newsletter.audience.feedback import Kind, Report
from newsletter.web.webhooks.auth import WINDOW, bad_request, check_fresh, load_json, unauthorized
from newsletter.web.webhooks.reading import (
    address,
    event_key,
    mapping,
    text,
    unix_time,
    when,
)

NAME = "mailgun"
SECRET_VARIABLE = "MAILGUN_WEBHOOK_SIGNING_KEY"
SUPPRESSED = {
    "suppress-complaint": Kind.COMPLAINT,
    "suppress-unsubscribe": Kind.UNSUBSCRIBE,
}
DIRECT = {"complained": Kind.COMPLAINT, "unsubscribed": Kind.UNSUBSCRIBE}


class MailgunWebhook:
    name = NAME

    def __init__(self, signing_key: str | None) -> None:
        self.key = signing_key.encode("utf-8") if signing_key else None
        self.has_signature = self.key is not None
        self.tokens: dict[str, tuple[float, bytes]] = {}

    def verify(self, headers: Mapping[str, str], body: bytes, clock: float) -> None:
        if self.key is None:
            raise unauthorized("this Mailgun webhook authenticates with basic auth")
        signed = mapping(mapping(load_json(body)).get("signature"))
        timestamp, token, given = (
            _scalar(signed.get("timestamp")),
            text(signed.get("token")),
            text(signed.get("signature")),
        )
        if not timestamp or not token or not given:
            raise unauthorized("the Mailgun signature (timestamp, token, signature) is missing")
        expected = hmac.new(self.key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogateescape")):
            raise unauthorized("the Mailgun signature does not match")
        check_fresh(timestamp, clock)
        self._once(token, body, clock)

    def _once(self, token: str, body: bytes, clock: float) -> None:
        """Refuse a token already used with another body (the signature is only over
        timestamp and token); the same body again is a retry, which the event key
        makes harmless."""
        for old, (seen_at, _) in list(self.tokens.items()):
            if clock - seen_at > 2 * WINDOW:
                del self.tokens[old]
        digest = hashlib.sha256(body).digest()
        seen = self.tokens.get(token)
        if seen is not None and not hmac.compare_digest(seen[1], digest):
            raise unauthorized("this Mailgun signature was already used for another event")
        self.tokens[token] = (clock, digest)

    def reports(self, body: bytes, headers: Mapping[str, str]) -> list[Report]:
        document = load_json(body)
        if not isinstance(document, dict) or not isinstance(document.get("event-data"), dict):
            raise bad_request('a Mailgun webhook posts {"signature": ..., "event-data": {...}}')
        return [read_event(document["event-data"])]


def _scalar(value: Any) -> str:
    """Mailgun's timestamp is a string in its examples; a number is read the same way."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    return text(value)


def read_event(event: dict[str, Any]) -> Report:
    name = text(event.get("event"))
    kind = DIRECT.get(name, Kind.OTHER)
    label = name[:40] or "no event name"
    if name == "failed":
        severity, reason = text(event.get("severity")), text(event.get("reason"))
        if severity == "permanent":
            kind = SUPPRESSED.get(reason, Kind.BOUNCE)
        elif severity == "temporary":
            kind = Kind.SOFT_BOUNCE
        label = f"failed {severity} {reason}".strip()[:80]
    headers = mapping(mapping(event.get("message")).get("headers"))
    ident = text(event.get("id")) or "no-id"
    stamp = _scalar(event.get("timestamp"))
    return Report(
        provider=NAME,
        event_key=event_key(NAME, ident, stamp),
        kind=kind,
        email=address(event.get("recipient"), "the event"),
        occurred_at=when(unix_time(event.get("timestamp"))),
        label=label,
        message_id=text(headers.get("message-id")),
        issue=text(mapping(event.get("user-variables")).get("issue")),
        payload=event,
    )
