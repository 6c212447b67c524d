"""Signed tokens for the links in an email: never a raw id or address.

    <payload>.<signature>     both base64url; the signature is HMAC-SHA256 over the
                              payload with NEWSLETTER_SECRET_KEY, cut to 128 bits

An unsubscribe token names the subscriber's id and the issue, so one link unsubscribes
one person, cannot be forged without the key, and cannot be turned into another's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
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
    # hmac.digest is OpenSSL's one-shot HMAC: a few times faster than an hmac.new object,
    # and a send signs one link per recipient.
    mac = hmac.digest(secret.encode("utf-8"), body, "sha256")[:16]
    return f"{_b64(body)}.{_b64(mac)}"


def verify(token: str, secret: str) -> str | None:
    """The payload of a genuine token; None for a tampered or malformed one."""
    try:
        body_text, mac_text = token.split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (ValueError, TypeError):
        return None
    expected = hmac.digest(secret.encode("utf-8"), body, "sha256")[:16]
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
