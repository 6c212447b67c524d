"""What every response of `serve` carries and what every request may bring: security
headers on every response, and a cap on the size of a request's body, refused with 413
before the app reads past it. web.front applies both to every request.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope

# No script at all; styles from the page itself (the templates and archived issues carry
# their CSS inline); images also from https (an archived issue shows its articles'
# pictures); forms post only to this site (the organisation's own site posts to
# /subscribe from its pages: that is the other site's form-action, not ours).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple(
    (name.encode("latin-1"), value.encode("latin-1"))
    for name, value in (
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    )
)
# Pages that carry a token are personal: no cache keeps them.
NO_STORE = (b"cache-control", b"no-store")
_OURS = frozenset(name for name, _ in SECURITY_HEADERS) | {NO_STORE[0]}
_ALL = [*SECURITY_HEADERS, NO_STORE]


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's headers with SECURITY_HEADERS (and no-store unless it says otherwise).

    The usual response sets none of them, and then gets the precomputed list as it is;
    only one that sets some of them itself (its own Cache-Control) is looked through.
    """
    if any(name.lower() in _OURS for name, _ in headers):
        present = {name.lower() for name, _ in headers}
        return headers + [h for h in _ALL if h[0] not in present]
    return headers + _ALL


class BodyCap:
    """The cap on a request's body: `limit`, or a prefix's own in `by_prefix` (provider
    webhooks send batches far larger than any form).

    Over it, 413, by its Content-Length before a byte is read, else as it streams. The
    HTTPException is raised from `receive`, inside the app's exception handling, so the
    person sees the readable error page and nothing was changed.
    """

    def __init__(self, limit: int, by_prefix: dict[str, int] | None = None) -> None:
        self.limit = limit
        self.by_prefix = by_prefix or {}

    def cap(self, path: str) -> int:
        for prefix, limit in self.by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    def receive(self, scope: Scope, receive: Receive) -> Receive:
        """`receive`, counted where it has to be."""
        cap = self.cap(scope["path"])
        declared, framed = 0, True
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = int(value) if value.isdigit() else cap + 1
            elif name == b"transfer-encoding":
                framed = False  # chunked: the body may run past any Content-Length
        if framed and declared <= cap:
            # The server reads no more body than Content-Length says (none without one):
            # nothing to count.
            return receive
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            if declared > cap:
                raise HTTPException(413)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise HTTPException(413)
            return message

        return counted
