"""What every provider's webhook shares: refusals, the body, basic auth and the clock.

A refusal is an exception carrying the HTTP status and one line for the provider's log
(and ours); it never quotes a header, a signature or a secret. Secrets are compared in
constant time (hmac.compare_digest), so a wrong one takes as long as a right one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request

from newsletter.errors import ConfigError

# Bodies larger than this are refused: SendGrid batches up to about 768 KB of events
# (Event Webhook reference), the others post one event at a time.
MAX_BODY = 5 * 1024 * 1024
# A signed timestamp further than this from our clock is refused, either way: a captured
# request replayed later, or a clock badly wrong. Svix's own libraries use 5 minutes.
WINDOW = 300
AUTH_VARIABLE = "NEWSLETTER_WEBHOOK_AUTH"


class Refused(Exception):
    """The request is refused with `status`; the text is safe to send back and log."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def unauthorized(text: str) -> Refused:
    return Refused(401, text)


def bad_request(text: str) -> Refused:
    return Refused(400, text)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body (signatures are over the exact bytes), refused past `limit`."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise bad_request("Content-Length is not a number")
        if int(length) > limit:
            raise Refused(413, f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def load_json(body: bytes) -> Any:
    """The body as JSON, or a 400 saying it is not."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("the body is not JSON") from exc


def check_fresh(timestamp: str, clock: float) -> None:
    """Refuse a signed timestamp outside the window (a replay or a broken clock)."""
    try:
        seconds = float(timestamp)
    except ValueError as exc:
        raise unauthorized("the signature's timestamp is not a number") from exc
    if not abs(clock - seconds) <= WINDOW:  # also refuses NaN
        raise unauthorized(
            f"the signature's timestamp is more than {WINDOW // 60} minutes from now; "
            "a request is accepted only within that window"
        )


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of two secrets, as bytes."""
    a = given.encode("utf-8", "surrogateescape") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogateescape") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


def b64decode(text: str) -> bytes:
    """Strict base64; ValueError on anything else."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


class BasicAuth:
    """HTTP basic auth against NEWSLETTER_WEBHOOK_AUTH (`user:password`).

    Postmark signs nothing and documents basic auth in the webhook URL
    (https://user:password@host/webhooks/postmark); any provider may use it instead of,
    or beside, its own signature. Only the SHA-256 of the expected header is kept.
    """

    def __init__(self, credentials: str) -> None:
        user, colon, password = credentials.partition(":")
        if not colon or not user or not password:
            raise ConfigError(f"{AUTH_VARIABLE} must be user:password, both parts non-empty")
        token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        self._expected = hashlib.sha256(f"Basic {token}".encode()).digest()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BasicAuth | None:
        value = environ.get(AUTH_VARIABLE, "")
        return cls(value) if value else None

    def accepts(self, header: str) -> bool:
        """Whether an Authorization header carries these credentials."""
        scheme, _, rest = header.strip().partition(" ")
        normal = f"Basic {rest.strip()}" if scheme.lower() == "basic" else header
        digest = hashlib.sha256(normal.encode("utf-8", "surrogateescape")).digest()
        return hmac.compare_digest(digest, self._expected)


def now() -> float:
    return time.time()
