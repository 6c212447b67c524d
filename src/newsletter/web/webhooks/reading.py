"""Reading a provider's event: fields of the right type, times, keys.

A webhook body is outside input: every field may be missing, of another type, or
absurd. These helpers give a value of the expected type or None, never an exception,
so a provider module reads like its documentation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from typing import Any

import orjson

from newsletter.web.webhooks.auth import bad_request

# The longest event_key the events table holds.
KEY_LENGTH = 300


def text(value: Any) -> str:
    """A string field, or "" when it is missing or not a string."""
    return value if isinstance(value, str) else ""


def mapping(value: Any) -> dict[str, Any]:
    """An object field, or {} when it is missing or not an object."""
    return value if isinstance(value, dict) else {}


def address(value: Any, what: str) -> str:
    """The recipient address an event is about; 400 when there is none."""
    found = text(value).strip()
    if not found or len(found) > 320:
        raise bad_request(f"{what} has no recipient address")
    return found


def iso_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 time as an aware UTC datetime, or None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def unix_time(value: Any) -> dt.datetime | None:
    """Seconds since 1970 (a number or its text) as an aware UTC datetime, or None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 < value < 32503680000:  # before the year 3000
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC)


def when(found: dt.datetime | None) -> dt.datetime:
    """The event's time, or now when the provider gave none that can be read."""
    return found or dt.datetime.now(dt.UTC)


def event_key(provider: str, *parts: str) -> str:
    """A unique key from the provider's own id(s), hashed if it would be too long."""
    key = ":".join((provider, *parts))
    if len(key) <= KEY_LENGTH:
        return key
    return f"{provider}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def content_key(provider: str, event: Any) -> str:
    """A key for an event that carries no id of its own: the hash of its content."""
    digest = hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{provider}:sha256:{digest}"
