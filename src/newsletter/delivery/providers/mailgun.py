"""Mailgun Messages API: POST /v3/<domain>/messages, multipart form, batch sending.

https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
Up to 1000 recipients per request, each in its own "to" field, with recipient-variables
holding every recipient's values. Never several "to" without recipient-variables: Mailgun
would then show every recipient all the others' addresses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from newsletter.compose.message import Message
from newsletter.config import Settings
from newsletter.delivery.providers._http import Endpoint, finish
from newsletter.delivery.providers._merge import merge_values, shared_body
from newsletter.delivery.providers.base import Options, SendResult, Status
from newsletter.errors import ConfigError

# Facts from the batch sending page above and the sending page
# (https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/send-http);
# the registry in providers/__init__.py is built from them.
NAME = "mailgun"
BASE_URLS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}
KEY_VARIABLE = "MAILGUN_API_KEY"  # sent as HTTP Basic api:<key>
MAX_BATCH = 1000  # recipients per batch send
# Bytes one request should carry at most: a message may be 25 MB (sending page); 8 MB
# stays well under it.
REQUEST_BUDGET = 8_000_000
# Messages a second to the list: Mailgun publishes no number, only 429 "try again after"
# (responses page); a conservative start that settings can raise.
DEFAULT_RATE = 50.0
IDEMPOTENT = False  # no idempotency key is documented: a request sent again may deliver twice
KEY_HINT = f"set {KEY_VARIABLE} or NEWSLETTER_API_KEY to a Mailgun API key"
# Headers that differ per recipient travel as recipient-variables (%recipient.h:Name%).
PER_RECIPIENT_HEADERS = ("Message-ID", "List-Unsubscribe")

Fields = list[tuple[str, tuple[None, str]]]


def tag(field: str) -> str:
    return f"%recipient.{field}%"


def build_request(batch: Sequence[Message], *, sandbox: bool) -> Fields:
    """Form fields for one request; a batch that does not share one body must hold one message."""
    first = batch[0]
    shared = shared_body(batch, tag)
    if shared is None and len(batch) > 1:
        raise ValueError("messages with different bodies go in separate requests")
    html, text = shared or (first.html, first.text)
    fields: list[tuple[str, str]] = [("from", first.sender), ("subject", first.subject)]
    variables: dict[str, dict[str, str]] = {}
    for message in batch:
        recipient = message.recipient
        fields.append(("to", message.to))
        values = merge_values(message) if shared else {}
        for name in PER_RECIPIENT_HEADERS:
            values[f"h:{name}"] = message.headers[name]
        variables[recipient.email] = values
    fields += [("text", text), ("html", html)]
    for name, value in first.headers.items():
        per_recipient = name in PER_RECIPIENT_HEADERS
        fields.append((f"h:{name}", tag(f"h:{name}") if per_recipient else value))
    if first.reply_to:
        fields.append(("h:Reply-To", first.reply_to))
    fields += [
        ("recipient-variables", json.dumps(variables, ensure_ascii=False)),
        ("v:issue", first.issue),
        ("o:tracking", "no"),
    ]
    if sandbox:
        fields.append(("o:testmode", "yes"))
    return [(name, (None, value)) for name, value in fields]


def parse_response(batch: Sequence[Message], body: object) -> list[SendResult] | None:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return None
    return [SendResult(m.recipient.email, Status.SENT, body["id"]) for m in batch]


def create(settings: Settings, options: Options) -> MailgunProvider:
    p = settings.provider
    if not p.domain:
        raise ConfigError(
            "Mailgun needs the sending domain: set [provider] domain in newsletter.toml "
            "or NEWSLETTER_PROVIDER_DOMAIN"
        )
    return MailgunProvider(options, domain=p.domain, region=p.region, base_url=p.base_url)


class MailgunProvider:
    name = NAME
    max_batch = MAX_BATCH
    idempotent = IDEMPOTENT

    def __init__(
        self, options: Options, *, domain: str, region: str = "us", base_url: str = ""
    ) -> None:
        base = base_url or BASE_URLS[region]
        self.endpoint = Endpoint.at(
            options, base, f"/v3/{domain}/messages", provider="Mailgun", key_hint=KEY_HINT
        )
        self.options = options

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        if shared_body(batch, tag) is None and len(batch) > 1:
            return self._one_by_one(batch)
        results = self._post(batch)
        if len(batch) > 1 and results[0].status is Status.REJECTED:
            # Mailgun refuses a whole batch for one bad address without saying which:
            # send each alone so that only the bad one is refused.
            return self._one_by_one(batch)
        return results

    def _one_by_one(self, batch: Sequence[Message]) -> list[SendResult]:
        return [result for m in batch for result in self._post([m])]

    def _post(self, batch: Sequence[Message]) -> list[SendResult]:
        fields = build_request(batch, sandbox=self.options.sandbox)
        reply = self.endpoint.post(batch, files=fields, auth=("api", self.options.key))
        return finish(reply, batch, lambda answer: parse_response(batch, answer.body))
