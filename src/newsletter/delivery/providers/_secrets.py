"""What must never be printed, logged or stored, in every form it can come back in.

A provider or a proxy in front of it may quote the request back: its headers (the key as
is, or base64 "api:<key>" for HTTP Basic), a URL-encoded form, a JSON string. `Secrets`
holds each secret value (the API key, NEWSLETTER_SECRET_KEY, any other key in the
environment) in all of those forms, and `redact` takes them out of a text. While a
`Secrets` is alive, the records httpx and httpcore log (which at DEBUG include the
answer's headers and errors) go through it too.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import urllib.parse
import weakref

MARK = "[redacted]"
MIN_LENGTH = 4  # shorter values would redact ordinary words; no key is that short
# What httpx and httpcore log to (see each module's logging.getLogger call).
HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


def forms(value: str) -> set[str]:
    """`value` as it travels or is quoted back; base64 without padding, so that it also
    matches inside longer base64 text."""
    found = {
        value,
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value)[1:-1].replace("/", "\\/"),
        repr(value)[1:-1],
        repr(value.encode("utf-8", "backslashreplace"))[2:-1],
    }
    for plain in (value, f"api:{value}"):  # Mailgun's HTTP Basic is base64 "api:<key>"
        raw = plain.encode("utf-8", "backslashreplace")
        found.add(base64.b64encode(raw).decode().rstrip("="))
        found.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    return {f for f in found if len(f) >= MIN_LENGTH}


class Secrets:
    """The values that must never be printed, with the forms they travel in."""

    def __init__(self, *values: str) -> None:
        found: set[str] = set()
        for value in values:
            for text in {value, value.strip()}:
                if len(text) >= MIN_LENGTH:
                    found |= forms(text)
        # Longest first, so that a form inside a longer one never leaves the rest behind;
        # case aside, as percent-encoding and some echoes change case.
        ordered = sorted(found, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE) if ordered else None
        )
        # For ASCII text and ASCII forms, lower() is exactly the case-blindness of the
        # pattern: a look for each form with `in` tells in C whether there is anything
        # to take out, where the pattern would try every form at every character of
        # a long answer.
        self._ascii = (
            [form.lower() for form in ordered] if all(f.isascii() for f in ordered) else None
        )
        if ordered:
            _LOG_FILTER.watch(self)

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        if self._ascii is not None and text.isascii():
            lowered = text.lower()
            if not any(form in lowered for form in self._ascii):
                return text
        return self._pattern.sub(MARK, text)


class _LogFilter(logging.Filter):
    """Takes every live `Secrets`'s values out of httpx's and httpcore's log records."""

    def __init__(self) -> None:
        super().__init__()
        self._live: weakref.WeakSet[Secrets] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, secrets: Secrets) -> None:
        with self._lock:
            self._live.add(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            live = list(self._live)
        if live:
            text = clean = record.getMessage()
            for secrets in live:
                clean = secrets.redact(clean)
            if clean != text:
                record.msg, record.args = clean, ()
        return True


_LOG_FILTER = _LogFilter()
for _name in HTTP_LOGGERS:
    logging.getLogger(_name).addFilter(_LOG_FILTER)


def unsendable(value: str) -> str:
    """What in `value` no HTTP header can carry as a key, or "" when nothing is wrong.

    Keys are printable ASCII without spaces; anything else is a copying mistake that
    httpx would turn into a traceback quoting the header (or worse, a second header).
    """
    for char in value:
        if char in "\r\n\u2028\u2029\x85":
            return "a line break"
        if char == " ":
            return "a space"
        if not char.isascii():
            return "a non-ASCII character"
        if not char.isprintable():
            return "a control character"
    return ""
