"""`check --links`: fetch every link and image once, a few at a time, with a short timeout.

A GET (HEAD is refused or mishandled by too many servers) whose body is never read: the
status and the content type are all the rules need. The unsubscribe link is left alone
(a GET there must change nothing, and the sample token is not a reader's).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from newsletter.checks.email import BuiltEmail, Fetched

LINK_TIMEOUT = 5.0  # seconds for each of connect, read and pool
POOL = 8  # requests at once: enough to be quick, few enough to be polite to one site
MAX_REDIRECTS = 5
USER_AGENT = "newsletter-check/1 (a newsletter's link checker)"


def urls_to_fetch(email: BuiltEmail) -> list[str]:
    """Every web link and image of the email, once each, in document order."""
    found: dict[str, None] = {}
    for element in email.doc.iter("a", "img"):
        url = (element.get("href") if element.tag == "a" else element.get("src")) or ""
        url = url.strip()
        if urlsplit(url).scheme in ("http", "https") and not url.startswith(
            email.settings.unsubscribe_url
        ):
            found[url] = None
    return list(found)


def fetch_all(
    urls: Iterable[str], client: httpx.Client | None = None, timeout: float = LINK_TIMEOUT
) -> dict[str, Fetched]:
    """Fetch `urls` through one client with at most POOL requests in flight."""
    own = client is None
    http = client or httpx.Client(
        timeout=timeout,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL),
        headers={"User-Agent": USER_AGENT},
    )
    try:
        with ThreadPoolExecutor(max_workers=POOL) as pool:
            results = list(pool.map(lambda url: fetch_one(http, url), urls))
    finally:
        if own:
            http.close()
    return {result.url: result for result in results}


def fetch_one(client: httpx.Client, url: str) -> Fetched:
    try:
        with client.stream("GET", url) as response:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return Fetched(url, status=response.status_code, content_type=kind)
    except httpx.TimeoutException:
        return Fetched(url, problem="timed out")
    except httpx.TooManyRedirects:
        return Fetched(url, problem=f"more than {MAX_REDIRECTS} redirects")
    except httpx.ConnectError as exc:
        return Fetched(url, problem=f"cannot connect ({exc or 'refused'})")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return Fetched(url, problem=f"{type(exc).__name__}: {exc}")
