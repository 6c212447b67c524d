"""What every endpoint of the fake shares: the keys it takes, what it records, how it
refuses a request, and the checks all of them make (JSON, the official schema, addresses).

The schemas are the providers' own, vendored in tests/schemas/ (see its README), so the
fake always holds the adapters to them and never looks outside this repository.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from fake_provider.server import FakeProvider

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
KEYS = {
    "postmark": "pm-server-token-5ecret",
    "sendgrid": "SG.sendgrid-5ecret-key",
    "mailgun": "key-mailgun-5ecret",
    "resend": "re_resend_5ecret_key",
}
MAILGUN_DOMAIN = "mg.example.org"
POSTMARK_TEST_TOKEN = "POSTMARK_API_TEST"

# A provider's error body for a status and a message, in that provider's shape.
ErrorShape = Callable[[int, str], Any]


@dataclass
class Accepted:
    provider: str
    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    provider_id: str


@dataclass
class Seen:
    provider: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


class Refusal(Exception):
    """Answer at once with this status, body and headers (raised anywhere in a handler)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def plain_error(status: int, message: str) -> Any:
    """The error shape of an endpoint the fake does not know."""
    return {"message": message}


@cache
def validator(file: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / file).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def check_schema(fake: FakeProvider, provider: str, data: Any, error: ErrorShape) -> None:
    """Refuse a body the provider's official schema refuses, naming the first place."""
    errors = sorted(fake.validators[provider].iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path)
        raise Refusal(400, error(400, f"schema: {where}: {errors[0].message}"))
    fake.schema_checked.add(provider)


def parse_json(body: bytes, error: ErrorShape) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise Refusal(400, error(400, "body is not valid JSON")) from None


def bad_address(address: str) -> bool:
    return "invalid" in address or not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address)


def addr(text: str) -> str:
    """The address of "Name <address>" (or of a bare address)."""
    match = re.search(r"<([^>]+)>\s*$", text)
    return (match.group(1) if match else text).strip()
