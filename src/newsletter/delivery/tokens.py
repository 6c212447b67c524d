"""Signed tokens for the links in an email: never a raw id or address.

    <payload>.<signature>     both base64url; the signature is HMAC-SHA256 over the
                              payload with NEWSLETTER_SECRET_KEY, cut to 128 bits

An unsubscribe token names the subscriber's id and the issue, so one link unsubscribes
one person, cannot be forged without the key, and cannot be turned into another's. It
never expires: RFC 8058 wants the link in an old issue to work as well as in today's.
The same token opens the subscriber's own page (/manage).

A confirmation token (double opt-in) names one recorded confirmation request and the
moment it expires, CONFIRM_DAYS after it was asked for: a link that sat in an inbox for
a month should not sign someone up. Each kind has its own prefix ("u:", "c:"), so one
kind can never be read as the other.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
from collections.abc import Mapping

from newsletter.errors import ConfigError

SECRET_VARIABLE = "NEWSLETTER_SECRET_KEY"
# Only the outbox may sign with this: its messages never leave the machine.
DEVELOPMENT_SECRET = "newsletter-development-key-for-the-outbox-only"
MIN_SECRET_LENGTH = 16


def secret_key(environ: Mapping[str, str], provider: str) -> str:
    """The signing key; a real provider refuses to send without a proper one."""
    secret = environ.get(SECRET_VARIABLE, "")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{SECRET_VARIABLE} is too short: use at least {MIN_SECRET_LENGTH} "
            "random characters, e.g. from `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    if secret:
        return secret
    if provider == "outbox":
        return DEVELOPMENT_SECRET
    raise ConfigError(
        f"set {SECRET_VARIABLE} in the environment: it signs the unsubscribe links "
        "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    )


_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """base64url without padding (binascii directly: one call per link, per recipient)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URL_SAFE).decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: str, secret: str) -> str:
    body = payload.encode("utf-8")
    return f"{_b64(body)}.{_b64(_signer(secret).mac(body))}"


class _Signer:
    """HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once.

    A send signs one link per recipient. hmac.digest sets up OpenSSL's HMAC afresh for
    each (4 us here); copying the two hash states the key begins with costs a third of
    that, and gives the same bytes (tested against hmac.digest).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self.inner = hashlib.sha256(key.translate(_IPAD))
        self.outer = hashlib.sha256(key.translate(_OPAD))

    def mac(self, body: bytes) -> bytes:
        """The first 128 bits of HMAC-SHA256(key, body)."""
        inner = self.inner.copy()
        inner.update(body)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:16]


_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@functools.lru_cache(maxsize=8)
def _signer(secret: str) -> _Signer:
    return _Signer(secret.encode("utf-8"))


def verify(token: str, secret: str) -> str | None:
    """The payload of a genuine token; None for a tampered or malformed one."""
    try:
        body_text, mac_text = token.split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (ValueError, TypeError):
        return None
    expected = _signer(secret).mac(body)
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unsubscribe_token(subscriber_id: int, issue: str, secret: str) -> str:
    return sign(f"u:{subscriber_id}:{issue}", secret)


def read_unsubscribe_token(token: str, secret: str) -> tuple[int, str] | None:
    """(subscriber id, issue) from a genuine unsubscribe token."""
    payload = verify(token, secret)
    if payload is None or not payload.startswith("u:"):
        return None
    _, ident, issue = payload.split(":", 2)
    return (int(ident), issue) if ident.isdigit() else None


CONFIRM_DAYS = 7
LONGEST_TOKEN = 600  # far more than any token we sign; longer text is not even decoded


def confirm_token(confirmation_id: int, expires_at: int, secret: str) -> str:
    """The double opt-in link's token: a confirmation request, valid until `expires_at`
    (seconds since the epoch)."""
    return sign(f"c:{confirmation_id}:{expires_at}", secret)


def read_confirm_token(token: str, secret: str) -> tuple[int, int] | None:
    """(confirmation id, expiry in seconds since the epoch) from a genuine confirm token.

    An expired token still reads, so the page can say it expired rather than that it is
    broken; `is_expired` tells which.
    """
    if len(token) > LONGEST_TOKEN:
        return None
    payload = verify(token, secret)
    if payload is None or not payload.startswith("c:"):
        return None
    parts = payload.split(":")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[1:]):
        return None
    return int(parts[1]), int(parts[2])


def is_expired(expires_at: int, now: float | None = None) -> bool:
    return (time.time() if now is None else now) >= expires_at


def read_subscriber_token(token: str, secret: str) -> tuple[int, str] | None:
    """(subscriber id, issue) from the token of an unsubscribe link, for the web pages:
    the same as read_unsubscribe_token, but safe on any text a browser may send."""
    if len(token) > LONGEST_TOKEN:
        return None
    payload = verify(token, secret)
    if payload is None or not payload.startswith("u:") or payload.count(":") < 2:
        return None
    _, ident, issue = payload.split(":", 2)
    return (int(ident), issue) if ident.isascii() and ident.isdigit() else None
