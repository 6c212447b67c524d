"""The checks a setting must pass, one per kind of value, for config.KEYS.

Each takes a value as newsletter.toml or the environment gives it and returns the setting,
or raises ValueError saying what is wrong with the value; config.py puts the file and key,
or the variable, in front of that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email import policy
from email.headerregistry import Address
from typing import Any
from urllib.parse import urlsplit

_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
# A subscriber tag, as segments and imports spell it.
TAG = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,99}")
_LIST_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
# Where str.splitlines() breaks a line; mail programs and browsers break at some of them too.
LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# Unicode category Cc, less the tab, line feed and carriage return that text files hold.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def line_problem(text: str) -> str | None:
    """Why `text` cannot be one line of a header or a heading ("U+2028 is a line break")."""
    found = LINE_BREAKS.search(text)
    if found:
        return f"U+{ord(found.group()):04X} is a line break"
    found = CONTROL_CHARACTERS.search(text)
    if found:
        return f"U+{ord(found.group()):04X} is a control character"
    return None


def one_line(value: Any) -> str:
    """A string of one line without control characters, not empty once stripped."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    text = value.strip()
    problem = line_problem(text)
    if problem:
        raise ValueError(f"must be a single line of text ({problem})")
    if not text:
        raise ValueError("must not be empty")
    return text


def postal(value: Any) -> str:
    """A postal address may span lines; the footer joins them with commas."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return ", ".join(line.strip() for line in value.splitlines() if line.strip())


def address(value: Any) -> Address:
    """Exactly one mailbox: a list would silently lose every address but the first."""
    text = one_line(value)
    header = policy.default.header_factory("From", text)
    found = header.addresses
    like = '"Name <news@example.org>"'
    if len(found) > 1 or any(group.display_name for group in header.groups):
        raise ValueError(f"{text!r} holds {len(found)} addresses: give exactly one address")
    mailbox = found[0] if found else None
    if mailbox is None or not mailbox.username or "." not in mailbox.domain:
        raise ValueError(f"{text!r} is not an email address like {like}")
    if header.defects or any(c.isspace() for c in mailbox.addr_spec):
        raise ValueError(f"{text!r} must be exactly one address, like {like}")
    return Address(
        display_name=mailbox.display_name, username=mailbox.username, domain=mailbox.domain
    )


def optional_address(value: Any) -> Address | None:
    return address(value) if value else None


def url(value: Any) -> str:
    """An absolute http(s) URL."""
    text = one_line(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} must be an absolute http(s) URL such as https://example.org/")
    return text


def language(value: Any) -> str:
    text = one_line(value)
    if not _LANGUAGE_TAG.match(text):
        raise ValueError(f"{text!r} is not a language tag such as en, fr or pt-BR")
    return text


def direction(value: Any) -> str:
    text = one_line(value)
    if text not in ("ltr", "rtl", "auto"):
        raise ValueError(f'{text!r} must be "ltr", "rtl" or "auto"')
    return text


def list_id(value: Any) -> str:
    text = one_line(value)
    if not _LIST_ID.match(text) or "." not in text:
        raise ValueError(f"{text!r} must look like a domain name, e.g. news.example.org")
    return text


def lines(value: Any) -> tuple[str, ...]:
    """A list of strings; blank ones are left out."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def topics(value: Any) -> tuple[str, ...]:
    """Tags subscribers may choose: lower case, as segments name them, each once."""
    found = lines(value)
    for tag in found:
        if not TAG.fullmatch(tag):
            raise ValueError(f"{tag!r} is not a tag (lower-case letters, digits, - _ . :)")
    if len(set(found)) != len(found):
        raise ValueError("names a topic twice")
    return found


def database_url(value: Any) -> str:
    text = one_line(value)
    scheme = text.partition(":")[0].split("+")[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError("must be a sqlite:/// or postgresql:// URL")
    return text


def provider_name(value: Any) -> str:
    text = one_line(value).lower()
    if not re.fullmatch(r"[a-z0-9_-]+", text):
        raise ValueError(f"{text!r} is not a provider name")
    return text


def region(value: Any) -> str:
    """A Mailgun region."""
    text = one_line(value).lower()
    if text not in ("us", "eu"):
        raise ValueError(f'{text!r} must be "us" or "eu"')
    return text


def number(
    kind: type[int] | type[float], low: float, high: float, what: str, low_open: bool = False
) -> Callable[[Any], Any]:
    """A check for a number of `kind` between low and high (above low if low_open)."""

    def check(value: Any) -> Any:
        try:
            got = kind(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{value!r} is not {what}") from exc
        if not (low < got if low_open else low <= got) or got > high:
            lowest = f"more than {low:g}" if low_open else f"at least {low:g}"
            raise ValueError(f"must be {lowest} and at most {high:g}")
        return got

    return check


seconds: Callable[[Any], float] = number(float, 0, 600, "a number of seconds", low_open=True)
attempts: Callable[[Any], int] = number(int, 1, 20, "a whole number")
