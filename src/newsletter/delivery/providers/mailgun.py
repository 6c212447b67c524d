"""Mailgun Messages API: POST /v3/<domain>/messages, multipart form, batch sending.

https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
Up to 1000 recipients per request, each in its own "to" field, with recipient-variables
holding every recipient's values. Never several "to" without recipient-variables: Mailgun
would then show every recipient all the others' addresses.

Mailgun fills its own syntax anywhere in the subject, the bodies and the h: headers:
"%recipient.NAME%" for each NAME in recipient-variables ("Variables can be referenced in
the message using %recipient.variablename%", API reference, recipient-variables), its
"Template Variables" (batch sending page) such as "%recipient%", the recipient's
"Name <address>" (mailgun.js issue 413 shows one left in To), and "%unsubscribe_url%",
"%tag_unsubscribe_url%" and "%mailing_list_unsubscribe_url%" when the domain tracks
unsubscribes (tracking messages page). It documents no way to escape them. So our
variables carry a fresh random secret in their names, and every look-alike in what we
send has its "%" broken: "&#37;" in HTML, the same character once parsed, and "%" with an
invisible word joiner after it in text, subject and headers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import httpx
import orjson

from newsletter.compose.message import Message
from newsletter.config import Settings
from newsletter.delivery.providers._http import Endpoint, finish
from newsletter.delivery.providers._merge import (
    PER_RECIPIENT_HEADERS,
    MergeFields,
    fresh_secret,
    shared_body,
    shares_body,
)
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
SHARES_BODY = True  # one body a request, each recipient's values in recipient-variables
KEY_HINT = f"set {KEY_VARIABLE} or NEWSLETTER_API_KEY to a Mailgun API key"

Fields = list[tuple[str, tuple[None, str]]]


# The "%" that opens something Mailgun could fill: anything after "%recipient", any
# %...unsubscribe_url% (even "%aaunsubscribe_url%", whose "%aa" reads as a %-escape), or a
# %name% whose first two characters are not hex digits (so never a %-escape in a URL).
_LOOKALIKE = re.compile(
    r"%(?=recipient|[a-z_]*unsubscribe_url%|(?![0-9a-f]{2})[a-z_][\w.:-]*%)", re.IGNORECASE
)
WORD_JOINER = "\u2060"  # zero width, no break: the reader sees the text as it was


def html_literal(html: str) -> str:
    """HTML with no Mailgun variable in it; a browser reads "&#37;" as "%" everywhere,
    attribute values included."""
    return _LOOKALIKE.sub("&#37;", html) if "%" in html else html


def text_literal(text: str) -> str:
    """Text (a text body, a subject, a header) with no Mailgun variable in it."""
    return _LOOKALIKE.sub("%" + WORD_JOINER, text) if "%" in text else text


def tag(field: str, secret: str) -> str:
    """The variable of a field in the request whose secret this is."""
    return f"%recipient.{secret}_{field}%"


def build_request(batch: Sequence[Message], *, sandbox: bool) -> Fields:
    """Form fields for one request; a batch that does not share one body must hold one message."""
    first = batch[0]
    secret = fresh_secret()
    shared = shared_body(
        batch,
        lambda field: tag(field, secret),
        html_literal=html_literal,
        text_literal=text_literal,
    )
    if shared is None and len(batch) > 1:
        raise ValueError("messages with different bodies go in separate requests")
    subject, html, text = shared or (
        text_literal(first.subject),
        html_literal(first.html),
        text_literal(first.text),
    )
    fields: list[tuple[str, str]] = [("from", first.sender), ("subject", subject)]
    merge = (
        MergeFields(
            first.rendered,
            lambda field: f"{secret}_{field}",
            # A value that is itself a look-alike (a name of "%unsubscribe_url%") stays
            # text whatever Mailgun does after.
            html_value=html_literal,
            text_value=text_literal,
        )
        if shared
        else None
    )
    # The headers that differ per recipient travel as recipient-variables too.
    message_id, unsubscribe = (f"{secret}_h:{name}" for name in PER_RECIPIENT_HEADERS)
    variables: dict[str, dict[str, str]] = {}
    for message in batch:
        recipient = message.recipient
        fields.append(("to", message.to))
        values = merge.values(message) if merge is not None else {}
        values[message_id] = text_literal(message.message_id)
        values[unsubscribe] = text_literal(
            message.letterhead.list_unsubscribe(recipient.unsubscribe_url)
        )
        variables[recipient.email] = values
    fields += [("text", text), ("html", html)]
    for name, value in first.headers.items():
        per_recipient = name in PER_RECIPIENT_HEADERS
        fields.append(
            (f"h:{name}", tag(f"h:{name}", secret) if per_recipient else text_literal(value))
        )
    if first.reply_to:
        fields.append(("h:Reply-To", first.reply_to))
    fields += [
        ("recipient-variables", orjson.dumps(variables).decode()),
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
    announces_departure = True  # Endpoint.post calls depart()

    def __init__(
        self, options: Options, *, domain: str, region: str = "us", base_url: str = ""
    ) -> None:
        base = base_url or BASE_URLS[region]
        self.endpoint = Endpoint.at(
            options, base, f"/v3/{domain}/messages", provider="Mailgun", key_hint=KEY_HINT
        )
        self.options = options

    def send(self, batch: Sequence[Message]) -> list[SendResult]:
        if not shares_body(batch) and len(batch) > 1:
            return self._one_by_one(batch)
        form = self._form(batch)
        if len(form[0]) > REQUEST_BUDGET and len(batch) > 1:
            # Recipients with more in their fields than plan.batch_size allowed for: the
            # batch goes in halves, each a batch of its own.
            half = len(batch) // 2
            return self.send(batch[:half]) + self.send(batch[half:])
        results = self._post(batch, form)
        if len(batch) > 1 and results[0].status is Status.REJECTED:
            # Mailgun refuses a whole batch for one bad address without saying which:
            # send each alone so that only the bad one is refused.
            return self._one_by_one(batch)
        return results

    def _one_by_one(self, batch: Sequence[Message]) -> list[SendResult]:
        return [result for m in batch for result in self._post([m], self._form([m]))]

    def _form(self, batch: Sequence[Message]) -> tuple[bytes, str]:
        """The request's body and Content-Type. Encoded whole, here: streamed as httpx
        gives a form, every part of every field went to the socket in its own write,
        thousands a batch (a tenth of a millisecond of the kernel's time a message, and a
        send ten times slower)."""
        form = httpx.Request(
            "POST", self.endpoint.url, files=build_request(batch, sandbox=self.options.sandbox)
        )
        return form.read(), form.headers["Content-Type"]

    def _post(self, batch: Sequence[Message], form: tuple[bytes, str]) -> list[SendResult]:
        content, kind = form
        reply = self.endpoint.post(
            batch, content=content, headers={"Content-Type": kind}, auth=("api", self.options.key)
        )
        return finish(reply, batch, lambda answer: parse_response(batch, answer.body))
