"""SendGrid: a JSON array of events per POST, signed with ECDSA (the Signed Event Webhook).

https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
SendGrid signs the timestamp header's bytes followed by the raw body with its P-256 key
(ECDSA over SHA-256), and sends the base64 DER signature in
X-Twilio-Email-Event-Webhook-Signature and the time in ...-Timestamp. We verify with
the public key SendGrid shows (SENDGRID_WEBHOOK_VERIFICATION_KEY, base64 DER).

Events (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event):
bounce (type "bounce", or "blocked" for a temporary refusal), dropped (with the reason
SendGrid suppressed the address), spamreport, unsubscribe, group_unsubscribe. The send's
custom_args come back as top-level keys: "issue" (delivery/providers/sendgrid.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from newsletter.audience.feedback import Kind, Report
from newsletter.errors import ConfigError
from newsletter.web.webhooks.auth import (
    b64decode,
    bad_request,
    check_fresh,
    load_json,
    unauthorized,
)
from newsletter.web.webhooks.reading import (
    address,
    content_key,
    event_key,
    text,
    unix_time,
    when,
)

NAME = "sendgrid"
SECRET_VARIABLE = "SENDGRID_WEBHOOK_VERIFICATION_KEY"
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"

DIRECT = {
    "spamreport": Kind.COMPLAINT,
    "unsubscribe": Kind.UNSUBSCRIBE,
    "group_unsubscribe": Kind.UNSUBSCRIBE,
}
# "dropped" reasons that mean SendGrid itself suppresses the address.
DROPPED = {
    "Bounced Address": Kind.BOUNCE,
    "Spam Reporting Address": Kind.COMPLAINT,
    "Unsubscribed Address": Kind.UNSUBSCRIBE,
}


def load_key(text_key: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or as PEM."""
    try:
        if "BEGIN PUBLIC KEY" in text_key:
            key = load_pem_public_key(text_key.strip().encode("ascii"))
        else:
            key = load_der_public_key(b64decode(text_key))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise ConfigError(
            f"{SECRET_VARIABLE} is not a public key: copy the verification key SendGrid shows "
            "under Mail Settings, Event Webhook, Signature Verification"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{SECRET_VARIABLE} is not an ECDSA P-256 public key")
    return key


class SendGridWebhook:
    name = NAME

    def __init__(self, key_text: str | None) -> None:
        self.key = load_key(key_text) if key_text else None
        self.has_signature = self.key is not None

    def verify(self, headers: Mapping[str, str], body: bytes, clock: float) -> None:
        if self.key is None:
            raise unauthorized("this SendGrid webhook authenticates with basic auth")
        signature, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise unauthorized("the SendGrid signature or timestamp header is missing")
        try:
            der = b64decode(signature)
            self.key.verify(
                der, timestamp.encode("utf-8", "surrogateescape") + body, ec.ECDSA(hashes.SHA256())
            )
        except (ValueError, InvalidSignature) as exc:
            raise unauthorized("the SendGrid signature does not match") from exc
        check_fresh(timestamp, clock)

    def reports(self, body: bytes, headers: Mapping[str, str]) -> list[Report]:
        document = load_json(body)
        if not isinstance(document, list):
            raise bad_request("a SendGrid webhook posts a JSON array of events")
        found = []
        for n, event in enumerate(document):
            if not isinstance(event, dict):
                raise bad_request(f"event {n} is not a JSON object")
            found.append(read_event(event, n))
        return found


def read_event(event: dict[str, Any], n: int = 0) -> Report:
    name = text(event.get("event"))
    kind = DIRECT.get(name, Kind.OTHER)
    label = name[:40] or "no event name"
    if name == "bounce":
        blocked = text(event.get("type")) == "blocked"
        kind, label = (Kind.SOFT_BOUNCE, "blocked") if blocked else (Kind.BOUNCE, "bounce")
    elif name == "dropped":
        reason = text(event.get("reason"))
        kind = DROPPED.get(reason, Kind.OTHER)
        label = f"dropped: {reason[:60]}"
    ident = text(event.get("sg_event_id"))
    return Report(
        provider=NAME,
        event_key=event_key(NAME, ident) if ident else content_key(NAME, event),
        kind=kind,
        email=address(event.get("email"), f"event {n}"),
        occurred_at=when(unix_time(event.get("timestamp"))),
        label=label,
        message_id=text(event.get("sg_message_id")),
        issue=text(event.get("issue")),
        payload=event,
    )
