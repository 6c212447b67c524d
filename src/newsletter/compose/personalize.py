"""Per-recipient fields, filled into the finished (inlined) issue.

The templates emit a placeholder token for each field. A token looks like a URL with its
own scheme ("x-newsletter-<nonce>:email"), which matters twice: it holds no space, which
lxml would URL-escape inside href values, and premailer's base_url rewriting leaves URLs
with another scheme alone, so an unsubscribe link survives inlining intact.

The nonce comes from a hash of everything the issue is made of (compose.sources), so no
article can know it: an article that writes "x-newsletter:email" into a link or an image
URL gets that text left as it is, never a tracking pixel with every reader's address.
Rendered issues made without a nonce use the plain "x-newsletter:<field>" tokens.

Personal fields (a subscriber's CSV columns, compose.fields) are tokens too, which carry
their field and their default: "x-newsletter-<nonce>:f.city.<default as hex>." (a slot).

The issue is split at its tokens once; each recipient then costs one list copy and one
join, a few microseconds even for a large issue.
"""

from __future__ import annotations

import html
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from newsletter.config_checks import CONTROL_CHARACTERS, LINE_BREAKS

if TYPE_CHECKING:
    from newsletter.compose.render import Rendered

FIELDS = ("name", "email", "unsubscribe_url")
_NONCE = re.compile(r"^[0-9a-f]*$")
# A personal field's slot: its name (compose.fields.field_key's form) and its default,
# UTF-8 as hex, then a closing dot, so that nothing written after it joins the token.
_SLOT = r"f\.[a-z0-9_]+\.(?:[0-9a-f]{2})*\."


def tokens(nonce: str = "") -> dict[str, str]:
    """The token for each field, as the templates of an issue with this nonce get them."""
    return {name: f"{_scheme(nonce)}:{name}" for name in FIELDS}


def _scheme(nonce: str) -> str:
    return f"x-newsletter-{nonce}" if nonce else "x-newsletter"


TOKENS = tokens()


def slot_token(nonce: str, name: str, default: str = "") -> str:
    """The token of personal field `name` (already in field_key form) with its default."""
    return f"{_scheme(nonce)}:{slot_key(name, default)}"


def slot_key(name: str, default: str = "") -> str:
    # surrogatepass: a default is whatever text the editor's template gave, and a lone
    # surrogate in it must come back out as it went in, not stop the build.
    return f"f.{name}.{default.encode('utf-8', 'surrogatepass').hex()}."


@lru_cache(maxsize=8)
def _token_pattern(nonce: str) -> re.Pattern[str]:
    if not _NONCE.match(nonce):
        raise ValueError(f"token nonce {nonce!r} must be lowercase hexadecimal")
    fields = "|".join(FIELDS)
    return re.compile(re.escape(_scheme(nonce)) + rf":((?:{fields})\b|{_SLOT})")


NO_FIELDS: Mapping[str, str] = MappingProxyType({})


class Recipient(NamedTuple):
    """Who one copy is for. `fields` are the subscriber's personal fields, keyed by
    compose.fields.field_key (the CSV column lower-cased, other characters as "_").
    A tuple: a send makes one per recipient."""

    email: str
    name: str = ""
    unsubscribe_url: str = ""
    fields: Mapping[str, str] = NO_FIELDS


class Personalized(NamedTuple):
    """The issue as one recipient receives it (a tuple: made once per recipient, and a
    frozen dataclass cost a quarter of the whole fill)."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class Slot:
    """One personal field as the issue uses it: where its value goes, and its default."""

    key: str  # the token's field part, as split_tokens gives it
    name: str
    default: str


def split_tokens(content: str, nonce: str = "") -> list[str]:
    """[literal, field, literal, field, ..., literal]: fields sit at the odd indexes."""
    return _token_pattern(nonce).split(content)


def slots(*parts: Sequence[str]) -> tuple[Slot, ...]:
    """The personal-field slots used in these split texts, each once."""
    keys = dict.fromkeys(key for each in parts for key in each[1::2] if key not in FIELDS)
    return tuple(_slot(key) for key in keys)


def _slot(key: str) -> Slot:
    _, name, default, _ = key.split(".")
    return Slot(key, name, bytes.fromhex(default).decode("utf-8", errors="surrogatepass"))


def fill(parts: list[str], values: Mapping[str, str]) -> str:
    out = parts[:]
    out[1::2] = [values[name] for name in parts[1::2]]
    return "".join(out)


def filler(parts: list[str]) -> Callable[[Mapping[str, str]], str]:
    """fill(parts, ...) for one split text, made once: its fields are looked up in one
    C call per recipient instead of a Python loop."""
    names = parts[1::2]
    if not names:
        whole = "".join(parts)
        return lambda values: whole
    if len(names) == 1:  # itemgetter of one key gives a value, not a tuple
        name = names[0]
        return lambda values: parts[0] + values[name] + parts[2]
    pick = operator.itemgetter(*names)

    def filled(values: Mapping[str, str]) -> str:
        out = parts[:]
        out[1::2] = pick(values)
        return "".join(out)

    return filled


def field_values(
    recipient: Recipient, used: Iterable[Slot] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """The recipient's fields as they go into text, and HTML-escaped as they go into HTML.

    Besides name, email and unsubscribe_url: a value for each slot in `used`, the
    subscriber's own or, when they have none, the slot's default. Once per message of a
    send, so most values (plain ASCII) pass one regular expression and nothing else.
    """
    raw = {
        "name": recipient.name,
        "email": recipient.email,
        "unsubscribe_url": recipient.unsubscribe_url,
    }
    fields = recipient.fields
    for slot in used:
        name = slot.name
        # name and email are the subscriber's own, not fields
        value: object = raw[name] if name in BUILT_IN else fields.get(name)
        if value is None or value == "":
            value = slot.default
        raw[slot.key] = value if type(value) is str else str(value)
    escaped = raw.copy()
    if PLAIN.fullmatch("".join(raw.values())):  # all plain: one look for all of them
        return raw, escaped
    for key, value in raw.items():
        if not PLAIN.fullmatch(value):
            raw[key] = value = _one_line(value)
            escaped[key] = _escape(value)
    return raw, escaped


BUILT_IN = frozenset(("name", "email"))  # the subscriber row's own, not from `fields`
# Printable ASCII but for what HTML escapes (& < > " ') and JSON escapes (\): such a value
# is the same in the text, the HTML and a JSON string (providers/_splice.py relies on it).
PLAIN = re.compile(r"[ !#-%(-;=?-\[\]-~]*")


_HTML_SPECIAL = re.compile(r"[&<>\"']")


def _escape(value: str) -> str:
    """For HTML: escaped, and ASCII like the inlined issue (see inline.ascii_html)."""
    if _HTML_SPECIAL.search(value):
        value = html.escape(value, quote=True)
    return value if value.isascii() else value.encode("ascii", "xmlcharrefreplace").decode()


def personalize(rendered: Rendered, recipient: Recipient) -> Personalized:
    """Fill the recipient's fields: HTML-escaped in the HTML, as they are in the text and
    the subject. A personal field the recipient lacks gets its default (or nothing)."""
    raw, escaped = field_values(recipient, rendered.slots)
    return Personalized(
        rendered.subject_filler(raw), rendered.html_filler(escaped), rendered.text_filler(raw)
    )


def plain_tokens(parts: list[str]) -> str:
    """The text with every token in its plain, nonce-free form ("x-newsletter:email")."""
    out = parts[:]
    out[1::2] = [f"x-newsletter:{name}" for name in parts[1::2]]
    return "".join(out)


def readable(parts: list[str]) -> str:
    """The text with its fields as an editor writes them ("{{ subscriber.city }}"), for
    showing a subject that varies per recipient."""
    out = parts[:]
    out[1::2] = [
        f"{{{{ subscriber.{key.split('.')[1] if key.startswith('f.') else key} }}}}"
        for key in parts[1::2]
    ]
    return "".join(out)


def _one_line(value: str) -> str:
    """No line break or control character of a subscriber's data reaches the email."""
    if value.isprintable() or not (LINE_BREAKS.search(value) or CONTROL_CHARACTERS.search(value)):
        return value
    return " ".join(CONTROL_CHARACTERS.sub(" ", LINE_BREAKS.sub(" ", value)).split())
