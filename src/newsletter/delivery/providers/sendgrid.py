"""SendGrid v3 Mail Send: POST /v3/mail/send with up to 1000 personalizations.

https://www.twilio.com/docs/sendgrid/api-reference/mail-send
One request carries one body for the whole batch; per-recipient fields travel as
substitutions and per-recipient headers in each personalization. Success is 202 with
an empty body and an X-Message-Id header (200 in sandbox mode).

SendGrid replaces each substitution key wherever it occurs: "property names that will be
substituted by their corresponding property values in the `subject`, `reply-to` and
`content` portions of your message" (Mail Send reference, personalizations.substitutions).
A key an article could write ("-nl-email-") would hand every reader's address to that
article, so every request's keys carry a fresh random secret: then no text but our own
field positions can hold one, and the rest of the body needs no escaping. Nothing else in
a request is merge syntax: no template_id, and subscription tracking (whose
substitution_tag and [unsubscribe] would be filled) is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr
from typing import Any

import orjson

from newsletter.compose.message import Message, header_safe
from newsletter.config import Settings
from newsletter.delivery.providers._http import Answer, Endpoint, Reply, finish
from newsletter.delivery.providers._merge import (
    PER_RECIPIENT_HEADERS,
    MergeFields,
    fresh_secret,
    shared_body,
    shares_body,
)
from newsletter.delivery.providers.base import Options, SendResult, Status

# Facts from the Mail Send reference above, its limitations page
# (https://docs.sendgrid.com/api-reference/mail-send/limitations) and the rate limits page
# (https://twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits);
# the registry in providers/__init__.py is built from them.
NAME = "sendgrid"
BASE_URL = "https://api.sendgrid.com"
KEY_VARIABLE = "SENDGRID_API_KEY"  # an API key with Mail Send access, sent as Bearer
MAX_BATCH = 1000  # personalizations maxItems, and at most 1000 recipients per request
# Bytes one request should carry at most: "the total size of your email, including
# attachments, must be less than 30MB" (limitations); 8 MB stays well under it.
REQUEST_BUDGET = 8_000_000
# Messages a second to the list: no number is published for mail/send, only 429 with
# X-RateLimit-Reset (rate limits); a conservative start that settings can raise.
DEFAULT_RATE = 50.0
IDEMPOTENT = False  # no idempotency key is documented: a request sent again may deliver twice
SHARES_BODY = True  # one body a request, each recipient's values in substitutions
KEY_HINT = f"set {KEY_VARIABLE} or NEWSLETTER_API_KEY to an API key with Mail Send access"


def tag(field: str, secret: str) -> str:
    """The substitution key of a field in the request whose secret this is."""
    return f"-nl-{secret}-{field}-"


def _mailbox(text: str) -> dict[str, str]:
    name, addr = parseaddr(text)
    return _box(addr, name)


def _box(email: str, name: str) -> dict[str, str]:
    # "to.name cannot contain ; or ," (Mail Send limitations)
    name = header_safe(name).replace(";", " ").replace(",", " ").strip()
    return {"email": email, "name": name} if name else {"email": email}


def build_request(
    batch: Sequence[Message], *, sandbox: bool, merged: bool
) -> tuple[dict[str, Any], str, str]:
    """The request body; with merged=False the batch must hold a single message.

    Once per batch of up to 1000, so the loop below is most of a send's own work at
    SendGrid: each recipient is given from their own name and address (never parsed back
    out of a "Name <address>"), and only their values for the fields the body holds.
    """
    first = batch[0]
    letterhead = first.letterhead
    secret = fresh_secret()
    shared = shared_body(batch, lambda field: tag(field, secret)) if merged else None
    subject, html, text = shared or (first.subject, first.html, first.text)
    merge = MergeFields(first.rendered, lambda field: tag(field, secret)) if shared else None
    # Per personalization, "custom_args" (the schema types the request-wide one a string).
    issue = {"issue": first.issue}
    personalizations = []
    for message in batch:
        recipient = message.recipient
        item: dict[str, Any] = {
            "to": [_box(recipient.email, recipient.name)],
            # The rest of the headers are every message's (shares_body), once a request.
            "headers": {
                "Message-ID": message.message_id,
                "List-Unsubscribe": letterhead.list_unsubscribe(recipient.unsubscribe_url),
            },
            "custom_args": issue,
        }
        if merge is not None:
            item["substitutions"] = merge.values(message)
        personalizations.append(item)
    body: dict[str, Any] = {
        "personalizations": personalizations,
        "from": _mailbox(first.sender),
        "subject": subject,
        # text/plain must come before text/html
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        # What every message shares; a personalization's own headers come on top of these.
        "headers": {k: v for k, v in first.headers.items() if k not in PER_RECIPIENT_HEADERS},
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
    batch: Sequence[Message], answer: Answer, sandbox: bool
) -> list[SendResult] | None:
    """202 Accepted (200 in sandbox mode) with X-Message-Id; anything else is not SendGrid."""
    if answer.status != 202 and not (sandbox and answer.status == 200):
        return None
    message_id = answer.headers.get("x-message-id", "")
    return [SendResult(m.recipient.email, Status.SENT, message_id) for m in batch]


def blamed(body: Any) -> set[int]:
    """The personalizations a refusal names: each error's `field` is a path into the
    request, such as "personalizations.3.to.0.email" (Mail Send, 400 responses)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    bad = set()
    for error in errors if isinstance(errors, list) else []:
        field = error.get("field") if isinstance(error, dict) else None
        parts = field.split(".") if isinstance(field, str) else []
        if len(parts) > 1 and parts[0] == "personalizations" and parts[1].isdigit():
            bad.add(int(parts[1]))
    return bad


def blame(batch: Sequence[Message], reply: Reply) -> list[SendResult] | None:
    """A refusal that names the personalizations at fault: the others are sent again
    without them. None when the reply is not such a refusal."""
    results, answer = reply.results, reply.answer
    if not results or answer is None or results[0].status is not Status.REJECTED:
        return None
    bad = blamed(answer.body)
    if not bad or any(n >= len(batch) for n in bad):
        return None
    return [
        r
        if i in bad
        else SendResult(r.email, Status.RETRY, reason="resent without a refused address",
                        retry_after=0.0)
        for i, r in enumerate(results)
    ]  # fmt: skip


def create(settings: Settings, options: Options) -> SendGridProvider:
    return SendGridProvider(options, base_url=settings.provider.base_url)


class SendGridProvider:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = IDEMPOTENT
    announces_departure = True  # Endpoint.post calls depart()

    def __init__(self, options: Options, *, base_url: str = "") -> None:
        self.endpoint = Endpoint.at(
            options, base_url or BASE_URL, "/v3/mail/send", provider="SendGrid", key_hint=KEY_HINT
        )
        self.options = options

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        if not shares_body(batch) and len(batch) > 1:
            return [result for m in batch for result in self._post([m], merged=False)]
        return self._post(batch, merged=True)

    def _post(self, batch: Sequence[Message], merged: bool) -> list[SendResult]:
        body, _, _ = build_request(batch, sandbox=self.options.sandbox, merged=merged)
        content = orjson.dumps(body)
        if len(content) > REQUEST_BUDGET and len(batch) > 1:
            # Recipients with more in their fields than plan.batch_size allowed for: the
            # batch goes in halves, a request each.
            half = len(batch) // 2
            return self._post(batch[:half], merged) + self._post(batch[half:], merged)
        reply = self.endpoint.post(
            batch,
            content=content,
            headers={
                "Authorization": f"Bearer {self.options.key}",
                "Content-Type": "application/json",
            },
        )
        partly = blame(batch, reply)
        if partly is not None:
            return partly
        return finish(
            reply, batch, lambda answer: parse_response(batch, answer, self.options.sandbox)
        )
