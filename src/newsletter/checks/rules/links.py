"""Links: absolute, over https, and (with `check --links`) answering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule

WEB_SCHEMES = ("http", "https")


def _links(email: BuiltEmail) -> Iterator[tuple[str, Any]]:
    """(href, element) of every link; the element becomes a place only if a rule fires."""
    for a in email.doc.iter("a"):
        href = a.get("href")
        if href is not None:
            yield href.strip(), a


@rule("link-relative", Severity.ERROR, "a link with a relative URL")
def link_relative(email: BuiltEmail) -> Found:
    for href, a in _links(email):
        if not urlsplit(href).scheme and not href.startswith("#"):
            yield (
                f"link {href or '(empty href)'} is relative: it leads nowhere from an inbox",
                email.html_place(a),
            )


@rule("link-insecure", Severity.WARNING, "a link over http instead of https")
def link_insecure(email: BuiltEmail) -> Found:
    for href, a in _links(email):
        if urlsplit(href).scheme == "http":
            yield f"link {href} is not https", email.html_place(a)


@rule("link-broken", Severity.ERROR, "a link that answers an error (--links)", needs="links")
def link_broken(email: BuiltEmail) -> Found:
    fetched = email.fetched or {}
    for href, a in _links(email):
        result = fetched.get(href)
        if result is not None and result.broken and not result.timed_out:
            why = f"HTTP {result.status}" if result.status is not None else result.problem
            yield f"link {href} is broken: {why}", email.html_place(a)


@rule("link-slow", Severity.WARNING, "a link that did not answer in time (--links)", needs="links")
def link_slow(email: BuiltEmail) -> Found:
    fetched = email.fetched or {}
    for href, a in _links(email):
        result = fetched.get(href)
        if result is not None and result.timed_out:
            yield f"link {href} did not answer within the timeout", email.html_place(a)
