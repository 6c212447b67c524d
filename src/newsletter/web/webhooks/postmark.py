"""Postmark: one JSON event per POST, authenticated by basic auth only.

https://postmarkapp.com/developer/webhooks/webhooks-overview — Postmark signs nothing;
it documents basic auth in the webhook URL (https://user:password@host/...), so this
webhook exists only when NEWSLETTER_WEBHOOK_AUTH is set.

RecordType Bounce (Type says which: HardBounce, SoftBounce, Transient...),
SpamComplaint, and SubscriptionChange (an address suppressed or reactivated on
Postmark's side: https://postmarkapp.com/developer/webhooks/subscription-change-webhook).
The send puts the issue in Metadata (delivery/providers/postmark.py), and Postmark's
MessageID is what the ledger recorded for the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.audience.feedback import Kind, Report
from newsletter.web.webhooks.auth import bad_request, load_json, unauthorized
from newsletter.web.webhooks.reading import (
    address,
    content_key,
    event_key,
    iso_time,
    mapping,
    text,
    when,
)

NAME = "postmark"
SECRET_VARIABLE = ""  # none of its own: basic auth (NEWSLETTER_WEBHOOK_AUTH) is required

# Bounce Types (https://postmarkapp.com/developer/api/bounce-api#bounce-types).
HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
SOFT = {"SoftBounce", "Transient", "DnsError"}
# SubscriptionChange.SuppressionReason, when SuppressSending is true.
SUPPRESSED = {
    "HardBounce": Kind.BOUNCE,
    "SpamComplaint": Kind.COMPLAINT,
    "ManualSuppression": Kind.UNSUBSCRIBE,
}
# A bounce's full dump (Content) can be large and holds the whole message: not kept.
NOT_KEPT = ("Content",)


class PostmarkWebhook:
    name = NAME
    has_signature = False

    def verify(self, headers: Mapping[str, str], body: bytes, clock: float) -> None:
        raise unauthorized("Postmark webhooks authenticate with basic auth (user:password)")

    def reports(self, body: bytes, headers: Mapping[str, str]) -> list[Report]:
        event = load_json(body)
        if not isinstance(event, dict):
            raise bad_request("a Postmark webhook posts one JSON object")
        return [read_event(event)]


def read_event(event: dict[str, Any]) -> Report:
    record = text(event.get("RecordType"))
    kind, label = _kind(record, event)
    recipient = event.get("Email") if record in ("Bounce", "SpamComplaint") else None
    email = address(recipient or event.get("Recipient") or event.get("Email"), "the event")
    ident = event.get("ID")
    if record in ("Bounce", "SpamComplaint") and isinstance(ident, int | str) and ident != "":
        key = event_key(NAME, record, str(ident))
    elif record == "SubscriptionChange":
        key = event_key(
            NAME, record, text(event.get("MessageID")), email, text(event.get("ChangedAt"))
        )
    else:
        key = content_key(NAME, event)
    occurred = iso_time(event.get("BouncedAt") or event.get("ChangedAt")) or iso_time(
        event.get("DeliveredAt") or event.get("ReceivedAt")
    )
    return Report(
        provider=NAME,
        event_key=key,
        kind=kind,
        email=email,
        occurred_at=when(occurred),
        label=label,
        message_id=text(event.get("MessageID")),
        issue=text(mapping(event.get("Metadata")).get("issue")),
        payload={k: v for k, v in event.items() if k not in NOT_KEPT},
    )


def _kind(record: str, event: dict[str, Any]) -> tuple[Kind, str]:
    bounce_type = text(event.get("Type"))
    if record == "SpamComplaint":
        return Kind.COMPLAINT, record
    if record == "Bounce":
        if bounce_type in HARD:
            return Kind.BOUNCE, bounce_type
        if bounce_type in SOFT:
            return Kind.SOFT_BOUNCE, bounce_type
        if bounce_type == "SpamComplaint":
            return Kind.COMPLAINT, bounce_type
        if bounce_type == "Unsubscribe":
            return Kind.UNSUBSCRIBE, bounce_type
        return Kind.OTHER, f"Bounce {bounce_type}".strip()
    if record == "SubscriptionChange":
        reason = text(event.get("SuppressionReason"))
        if event.get("SuppressSending") is True and reason in SUPPRESSED:
            return SUPPRESSED[reason], f"suppressed: {reason}"
        return Kind.OTHER, "subscription change" + (f": {reason}" if reason else "")
    return Kind.OTHER, record[:40] or "no RecordType"
