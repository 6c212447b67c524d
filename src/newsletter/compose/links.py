"""The one policy every URL in an email passes, whatever it came from.

Front matter `url` and `image`, the canonical link, og:url and og:image of an imported page,
and the links and images inside article bodies all go through `checked_url`: http and https
everywhere, mailto (and tel, which sanitizing always let through) for links only, and
relative URLs, which rendering makes absolute against site_url. Anything else
(javascript:, data:, file:, vbscript:, an unknown scheme) is refused, so no such URL can
reach an href or a src. What `add` fetches passes `fetchable_url`: http(s) with a host.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from newsletter.config_checks import line_problem

LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
IMAGE_SCHEMES = frozenset({"http", "https"})
# Browsers drop tabs and line breaks anywhere in a URL ("java\tscript:" runs), and leading
# or trailing C0 controls and spaces; so does this check, before it looks at the scheme.
_IGNORED_INSIDE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def checked_url(value: str, *, image: bool = False) -> str:
    """`value` cleaned of what browsers ignore, or ValueError saying which URLs may be used."""
    text = _IGNORED_INSIDE.sub("", value).strip("".join(map(chr, range(0x21))))
    if not text:
        raise ValueError("must not be empty")
    allowed = IMAGE_SCHEMES if image else LINK_SCHEMES
    found = _SCHEME.match(text)
    if found and found.group(1).lower() not in allowed:
        kinds = "an http(s) URL" if image else "an http(s) or mailto: URL"
        raise ValueError(f"{text!r} must be {kinds} or a path on the site")
    problem = line_problem(text)
    if problem:
        raise ValueError(f"{text!r} is not a URL: {problem}")
    return text


def safe_url(value: str, *, image: bool = False) -> str | None:
    """The URL if the policy lets it through, else None (for attributes sanitizing drops)."""
    try:
        return checked_url(value, image=image)
    except ValueError:
        return None


def looks_like_url(text: str) -> bool:
    """Whether a source given to `add` is meant as a URL rather than a file (it has a scheme)."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]+://", text.strip()))


def fetchable_url(value: str) -> str:
    """An absolute http(s) URL with a host that `add` may fetch, or ValueError saying why."""
    found = _SCHEME.match(value.strip())
    if not found or found.group(1).lower() not in IMAGE_SCHEMES:
        raise ValueError("only http and https URLs can be fetched")
    text = checked_url(value)
    parts = urlsplit(text)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number fails here
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL ({exc})") from exc
    if not host:
        raise ValueError(f"{text!r} is not a URL: it names no host")
    return text
