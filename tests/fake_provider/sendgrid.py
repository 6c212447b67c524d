"""SendGrid's POST /v3/mail/send: one body, up to 1000 personalizations, 202 and no body.

https://www.twilio.com/docs/sendgrid/api-reference/mail-send
A 400 lists every problem with the `field` it is about ("personalizations.1.to.0.email");
substitutions are filled in per personalization, as SendGrid would.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from fake_provider.wire import KEYS, Accepted, Refusal, bad_address, check_schema, parse_json

if TYPE_CHECKING:
    from fake_provider.server import FakeProvider

NAME = "sendgrid"
SCHEMA = "sendgrid-mail-send.json"


def matches(path: str) -> bool:
    return path == "/v3/mail/send"


def error(status: int, message: str) -> Any:
    return {"errors": [{"message": message, "field": None, "help": None}]}


def handle(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    if headers.get("authorization") != f"Bearer {KEYS['sendgrid']}":
        raise Refusal(
            401, error(401, "The provided authorization grant is invalid, expired, or revoked")
        )
    data = parse_json(body, error)
    check_schema(fake, NAME, data, error)
    people = data.get("personalizations", [])
    if not 1 <= len(people) <= 1000:
        raise Refusal(400, error(400, "personalizations: 1 to 1000 items"))
    content = data.get("content", [])
    if [c.get("type") for c in content][:1] != ["text/plain"]:
        raise Refusal(400, error(400, "text/plain must be the first content type"))
    seen: set[str] = set()
    errors = []
    for n, person in enumerate(people):
        for m, to in enumerate(person.get("to", [])):
            email = to.get("email", "").lower()
            if email in seen:
                errors.append(
                    {
                        "message": "Each email address in the personalization block "
                        "should be unique",
                        "field": f"personalizations.{n}.to.{m}.email",
                    }
                )
            if bad_address(email):
                errors.append(
                    {
                        "message": "Does not contain a valid address.",
                        "field": f"personalizations.{n}.to.{m}.email",
                        "help": None,
                    }
                )
            seen.add(email)
    if len(seen) > 1000:
        errors.append({"message": "too many recipients", "field": "personalizations"})
    if errors:
        raise Refusal(400, {"errors": errors})
    sandbox = data.get("mail_settings", {}).get("sandbox_mode", {}).get("enable") is True
    message_id = uuid.uuid4().hex[:22]
    if sandbox:
        return 200, b"", {"X-Message-Id": message_id}
    texts = {c["type"]: c["value"] for c in content}
    for person in people:
        subs = person.get("substitutions", {})
        for to in person["to"]:
            fake.record(
                Accepted(
                    "sendgrid",
                    to["email"],
                    _subst(person.get("subject", data["subject"]), subs),
                    _subst(texts.get("text/html", ""), subs),
                    _subst(texts.get("text/plain", ""), subs),
                    {**data.get("headers", {}), **person.get("headers", {})},
                    message_id,
                )
            )
    return 202, b"", {"X-Message-Id": message_id}


def _subst(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text
