"""Resend: one JSON event per POST, signed by Svix.

https://resend.com/docs/webhooks/verify-webhooks-requests and Svix's
https://docs.svix.com/receiving/verifying-payloads/how-manual: the signed content is
"{svix-id}.{svix-timestamp}.{raw body}", HMAC-SHA256 with the base64 part of the
signing secret (RESEND_WEBHOOK_SECRET, "whsec_..."); svix-signature holds one or more
space-separated "v1,<base64>" (several while a secret is being rotated). svix-id stays
the same when Resend retries an event, so it is the event's key.

Events (https://resend.com/docs/webhooks/event-types): email.bounced (bounce.type
Permanent, or Transient/Undetermined, counted as soft), email.complained,
email.suppressed (Resend will not send to the address). The send tags each email with
the issue (delivery/providers/resend.py), and email_id is the id the ledger recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from newsletter.audience.feedback import Kind, Report
from newsletter.errors import ConfigError
from newsletter.web.webhooks.auth import (
    b64decode,
    bad_request,
    check_fresh,
    load_json,
    unauthorized,
)
from newsletter.web.webhooks.reading import address, event_key, iso_time, mapping, text, when

NAME = "resend"
SECRET_VARIABLE = "RESEND_WEBHOOK_SECRET"
PREFIX = "whsec_"
DIRECT = {"email.complained": Kind.COMPLAINT, "email.suppressed": Kind.BOUNCE}


def load_secret(secret: str) -> bytes:
    try:
        return b64decode(secret.strip().removeprefix(PREFIX))
    except ValueError as exc:
        raise ConfigError(
            f"{SECRET_VARIABLE} is not a Resend signing secret (whsec_ and base64): "
            "copy it from the webhook's page in Resend"
        ) from exc


class ResendWebhook:
    name = NAME

    def __init__(self, secret: str | None) -> None:
        self.key = load_secret(secret) if secret else None
        self.has_signature = self.key is not None

    def verify(self, headers: Mapping[str, str], body: bytes, clock: float) -> None:
        if self.key is None:
            raise unauthorized("this Resend webhook authenticates with basic auth")
        ident, timestamp = headers.get("svix-id"), headers.get("svix-timestamp")
        given = headers.get("svix-signature")
        if not ident or not timestamp or not given:
            raise unauthorized("the svix-id, svix-timestamp or svix-signature header is missing")
        signed = f"{ident}.{timestamp}.".encode("utf-8", "surrogateescape") + body
        expected = base64.b64encode(hmac.new(self.key, signed, hashlib.sha256).digest())
        matched = False
        for part in given.split():
            version, _, value = part.partition(",")
            if version == "v1" and hmac.compare_digest(expected, value.encode("ascii", "replace")):
                matched = True
        if not matched:
            raise unauthorized("the Svix signature does not match")
        check_fresh(timestamp, clock)

    def reports(self, body: bytes, headers: Mapping[str, str]) -> list[Report]:
        document = load_json(body)
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            raise bad_request('a Resend webhook posts {"type": ..., "data": {...}}')
        ident = headers.get("svix-id", "")
        return read_event(document, ident)


def read_event(event: dict[str, Any], ident: str) -> list[Report]:
    """One report per recipient in data.to (a string or a list)."""
    name = text(event.get("type"))
    data = mapping(event.get("data"))
    kind = DIRECT.get(name, Kind.OTHER)
    label = name[:40] or "no type"
    if name == "email.bounced":
        bounce_type = text(mapping(data.get("bounce")).get("type"))
        kind = Kind.BOUNCE if bounce_type in ("Permanent", "") else Kind.SOFT_BOUNCE
        label = f"bounced {bounce_type}".strip()
    to = data.get("to")
    recipients = to if isinstance(to, list) else [to]
    if not recipients or len(recipients) > 50:
        raise bad_request("data.to has no recipient address")
    base = ident or text(data.get("email_id"))
    if not base:
        raise bad_request("the event has neither an svix-id header nor data.email_id")
    found = []
    for n, recipient in enumerate(recipients):
        email = address(recipient, "data.to")
        parts = (base, name) if ident else (base, name, text(event.get("created_at")))
        found.append(
            Report(
                provider=NAME,
                event_key=event_key(NAME, *parts, *((str(n),) if n else ())),
                kind=kind,
                email=email,
                occurred_at=when(iso_time(event.get("created_at"))),
                label=label,
                message_id=text(data.get("email_id")),
                issue=_issue(data.get("tags")),
                payload=event,
            )
        )
    return found


def _issue(tags: Any) -> str:
    """The issue tag: webhooks give tags as an object; the send gave a list of pairs."""
    if isinstance(tags, dict):
        return text(tags.get("issue"))
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, dict) and tag.get("name") == "issue":
                return text(tag.get("value"))
    return ""
