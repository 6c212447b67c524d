"""Mailgun's POST /v3/<domain>/messages: multipart form, up to 1000 "to" per batch send.

https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
Several "to" need recipient-variables, or every recipient sees all the others; each
recipient's %recipient.x% tags are filled in from them, as Mailgun would.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from fake_provider.wire import KEYS, MAILGUN_DOMAIN, Accepted, Refusal, addr, bad_address

if TYPE_CHECKING:
    from fake_provider.server import FakeProvider

NAME = "mailgun"
SCHEMA = None  # form fields, not JSON: checked one by one below


def matches(path: str) -> bool:
    return re.fullmatch(r"/v3/[^/]+/messages", path) is not None


def error(status: int, message: str) -> Any:
    return {"message": message}


def _form(headers: dict[str, str], body: bytes) -> list[tuple[str, str]]:
    kind = headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise Refusal(400, {"message": "expected multipart/form-data"})
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode() + body
    )
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields.append((str(name), payload.decode("utf-8")))
    return fields


def handle(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    expected = "Basic " + base64.b64encode(f"api:{KEYS['mailgun']}".encode()).decode()
    if headers.get("authorization") != expected:
        raise Refusal(401, "Forbidden")
    if path != f"/v3/{MAILGUN_DOMAIN}/messages":
        raise Refusal(404, {"message": "Domain not found"})
    fields = _form(headers, body)
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name, []).append(value)
    for required in ("from", "to", "subject"):
        if not values.get(required):
            raise Refusal(400, {"message": f"'{required}' parameter is missing"})
    if not (values.get("html") or values.get("text")):
        raise Refusal(
            400, {"message": "Need at least one of 'text' or 'html' parameters specified"}
        )
    recipients = values["to"]
    if len(recipients) > 1000:
        raise Refusal(400, {"message": "Too many recipients: batch sending is limited to 1000"})
    raw_vars = values.get("recipient-variables", [None])[0]
    if len(recipients) > 1 and raw_vars is None:
        # Real Mailgun would send, showing every recipient all the others' addresses.
        raise Refusal(400, {"message": "fake: several 'to' without recipient-variables"})
    variables = json.loads(raw_vars) if raw_vars else {}
    options = sum(len(v) for k, vs in values.items() if k[:2] in ("o:", "h:", "v:") for v in vs)
    if options > 16 * 1024:
        raise Refusal(
            400,
            {
                "message": "Send options (parameters starting with o:, h:, or v:) "
                "are limited to 16KB total"
            },
        )
    for to in recipients:
        if bad_address(addr(to)):
            raise Refusal(
                400, {"message": "to parameter is not a valid address. please check documentation"}
            )
    message_id = f"<{uuid.uuid4().hex}@{MAILGUN_DOMAIN}>"
    if values.get("o:testmode") != ["yes"]:
        for to in recipients:
            address = addr(to)
            mine = variables.get(address, {})

            def fill(text: str, mine: dict[str, str] = mine) -> str:
                return re.sub(
                    r"%recipient\.([^%]+)%", lambda m: str(mine.get(m.group(1), "")), text
                )

            fake.record(
                Accepted(
                    "mailgun",
                    address,
                    fill(values["subject"][0]),
                    fill(values.get("html", [""])[0]),
                    fill(values.get("text", [""])[0]),
                    {k[2:]: fill(v[0]) for k, v in values.items() if k.startswith("h:")},
                    message_id,
                )
            )
    return 200, {"id": message_id, "message": "Queued. Thank you."}, {}
