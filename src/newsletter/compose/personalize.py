"""Per-recipient fields, filled into the finished (inlined) issue.

The templates emit a placeholder token for each field. A token looks like a URL with its
own scheme ("x-newsletter-<nonce>:email"), which matters twice: it holds no space, which
lxml would URL-escape inside href values, and premailer's base_url rewriting leaves URLs
with another scheme alone, so an unsubscribe link survives inlining intact.

The nonce comes from a hash of everything the issue is made of (compose.sources), so no
article can know it: an article that writes "x-newsletter:email" into a link or an image
URL gets that text left as it is, never a tracking pixel with every reader's address.
Rendered issues made without a nonce use the plain "x-newsletter:<field>" tokens.

The issue is split at its tokens once; each recipient then costs one list copy and one
join, a few microseconds even for a large issue.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from newsletter.config_checks import CONTROL_CHARACTERS, LINE_BREAKS

if TYPE_CHECKING:
    from newsletter.compose.render import Rendered

FIELDS = ("name", "email", "unsubscribe_url")
_NONCE = re.compile(r"^[0-9a-f]*$")


def tokens(nonce: str = "") -> dict[str, str]:
    """The token for each field, as the templates of an issue with this nonce get them."""
    scheme = f"x-newsletter-{nonce}" if nonce else "x-newsletter"
    return {field: f"{scheme}:{field}" for field in FIELDS}


TOKENS = tokens()


@lru_cache(maxsize=8)
def _token_pattern(nonce: str) -> re.Pattern[str]:
    if not _NONCE.match(nonce):
        raise ValueError(f"token nonce {nonce!r} must be lowercase hexadecimal")
    scheme = f"x-newsletter-{nonce}" if nonce else "x-newsletter"
    return re.compile(re.escape(scheme) + r":(" + "|".join(FIELDS) + r")\b")


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    unsubscribe_url: str = ""


@dataclass(frozen=True)
class Personalized:
    """The issue as one recipient receives it."""

    subject: str
    html: str
    text: str


def split_tokens(content: str, nonce: str = "") -> list[str]:
    """[literal, field, literal, field, ..., literal]: fields sit at the odd indexes."""
    return _token_pattern(nonce).split(content)


def fill(parts: list[str], values: dict[str, str]) -> str:
    out = parts[:]
    out[1::2] = [values[field] for field in parts[1::2]]
    return "".join(out)


def field_values(recipient: Recipient) -> tuple[dict[str, str], dict[str, str]]:
    """The recipient's fields as they go into text, and HTML-escaped as they go into HTML."""
    raw = {
        "name": _one_line(recipient.name),
        "email": _one_line(recipient.email),
        "unsubscribe_url": _one_line(recipient.unsubscribe_url),
    }
    return raw, {field: _escape(value) for field, value in raw.items()}


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def _escape(value: str) -> str:
    """For HTML: escaped, and ASCII like the inlined issue (see inline.ascii_html)."""
    if _HTML_SPECIAL.search(value):
        value = html.escape(value, quote=True)
    return value if value.isascii() else value.encode("ascii", "xmlcharrefreplace").decode()


def personalize(rendered: Rendered, recipient: Recipient) -> Personalized:
    """Fill the recipient's fields: HTML-escaped in the HTML, as they are in the text."""
    raw, escaped = field_values(recipient)
    return Personalized(
        subject=rendered.subject,
        html=fill(rendered.html_parts, escaped),
        text=fill(rendered.text_parts, raw),
    )


def _one_line(value: str) -> str:
    """No line break or control character of a subscriber's data reaches the email."""
    if LINE_BREAKS.search(value) or CONTROL_CHARACTERS.search(value):
        return " ".join(CONTROL_CHARACTERS.sub(" ", LINE_BREAKS.sub(" ", value)).split())
    return value
