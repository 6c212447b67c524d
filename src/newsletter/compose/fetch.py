"""Fetching a page or a feed for `add`: bounded in time, size, redirects and kind.

What a web server sends is outside input. So: http and https only (compose.links), at
most MAX_REDIRECTS redirects, TIMEOUT seconds for each connect or read and DEADLINE for the
whole body (a server that sends a byte a second never ends otherwise), a body read in
chunks and given up past MAX_BYTES (a Content-Length over it is refused before reading),
and a body that is binary (NUL bytes, or an image, a PDF, an archive by its type) refused.
Every way it fails is one ContentError naming the URL; no httpx error goes further.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from newsletter import __version__
from newsletter.compose.links import fetchable_url
from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, quoted, shown

TIMEOUT = 15.0
DEADLINE = 60.0
MAX_BYTES = 10_000_000
MAX_REDIRECTS = 5
_CHUNK = 65_536

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml",
     "text/xml", "application/x-rss+xml"}
)  # fmt: skip
_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip",
                 "application/octet-stream", "application/gzip", "application/x-")  # fmt: skip
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Fetched:
    """A body as it came: from where (after redirects), its media type and charset."""

    url: str
    media_type: str  # "text/html", lower case; "" when the server gave none
    charset: str | None
    data: bytes


def new_client(timeout: float = TIMEOUT) -> httpx.Client:
    """The client `add` fetches with when none is given: bounded timeouts."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout),
        headers={"User-Agent": f"newsletter/{__version__} (article import)"},
    )


def fetch(url: str, client: httpx.Client) -> Fetched:
    """GET `url` within the limits above, or ContentError saying which one it broke.

    Redirects are followed here, not by httpx, so each new URL passes the policy too.
    """
    where = shown(url, PATH_LIMIT)
    try:
        current = fetchable_url(url)
    except ValueError as exc:
        raise ContentError(f"{where}: {exc}") from exc
    started = time.monotonic()
    try:
        for _ in range(MAX_REDIRECTS + 1):
            with client.stream("GET", current, follow_redirects=False) as response:
                if response.is_redirect:
                    current = _next(where, current, response.headers.get("location", ""))
                    continue
                return _body(where, response, started)
    except httpx.InvalidURL as exc:
        # httpx reads a redirect's Location even when it does not follow it; the URL
        # given passed the policy already, so this is where a redirect leads.
        raise ContentError(f"{where}: redirected to a URL that is not http or https") from exc
    except httpx.TimeoutException as exc:
        raise ContentError(
            f"{where}: no answer within {_seconds(client)} s (timed out); try again later, "
            "or save the page and add the file"
        ) from exc
    except httpx.HTTPError as exc:
        raise ContentError(f"{where}: cannot be fetched ({_reason(exc)})") from exc
    raise ContentError(f"{where}: more than {MAX_REDIRECTS} redirects")


def _next(where: str, current: str, location: str) -> str:
    """Where a redirect leads, if the URL policy lets `add` go there."""
    try:
        return fetchable_url(urljoin(current, location))
    except ValueError as exc:
        raise ContentError(f"{where}: redirected to a URL that is not http or https") from exc


def _body(where: str, response: httpx.Response, started: float) -> Fetched:
    _check_answer(where, response)
    media_type, charset = _content_type(response.headers.get("content-type", ""))
    if media_type.startswith(_BINARY_TYPES) and kind_of(media_type, b"") == "other":
        raise ContentError(f"{where}: the server sent {quoted(media_type)}, not a web page or feed")
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes(_CHUNK):
        total += len(chunk)
        if total > MAX_BYTES:
            raise ContentError(f"{where}: {_too_big()}")
        if time.monotonic() - started > DEADLINE:
            raise ContentError(f"{where}: still downloading after {DEADLINE:.0f} s")
        chunks.append(chunk)
    data = b"".join(chunks)
    if is_binary(data):
        raise ContentError(f"{where}: the server sent binary data, not a web page or feed")
    return Fetched(url=str(response.url), media_type=media_type, charset=charset, data=data)


def _check_answer(where: str, response: httpx.Response) -> None:
    if response.status_code >= 400 or response.status_code < 200:
        reason = response.reason_phrase or ""
        raise ContentError(f"{where}: the server answered {response.status_code} {reason}".strip())
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES:
        raise ContentError(f"{where}: {_too_big(int(length))}")


def _too_big(size: int | None = None) -> str:
    said = (
        f"is {size / 1_000_000:.0f} MB" if size else f"is larger than {MAX_BYTES // 1_000_000} MB"
    )
    return f"{said}; a page or feed may be at most {MAX_BYTES // 1_000_000} MB"


def _content_type(header: str) -> tuple[str, str | None]:
    media_type, _, rest = header.partition(";")
    charset = None
    for parameter in rest.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    return media_type.strip().lower(), charset


def is_binary(data: bytes) -> bool:
    """NUL bytes near the start mean binary, unless a UTF-16 byte-order mark explains them."""
    head = data[:4096]
    return b"\x00" in head and not head.startswith(_BOMS[1:])


def kind_of(media_type: str, data: bytes) -> str:
    """ "page", "feed" or "other": by the media type, else by how the body starts."""
    if media_type in HTML_TYPES:
        return "page"
    if media_type in FEED_TYPES or media_type.endswith(("+xml", "/xml")):
        return "feed"
    head = data[:2048].lower()
    for bom in _BOMS:
        head = head.removeprefix(bom)
    head = head.lstrip()
    if head.startswith((b"<rss", b"<feed", b"<rdf")) or (
        head.startswith(b"<?xml") and b"<html" not in head
    ):
        return "feed"
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<html" in head:
        return "page"
    return "other"


def _seconds(client: httpx.Client) -> str:
    timeout = client.timeout.read or client.timeout.connect or TIMEOUT
    return f"{timeout:g}"


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
