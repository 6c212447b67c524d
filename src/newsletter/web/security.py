"""What every response of `serve` carries and what every request may bring.

Two plain ASGI middlewares (no BaseHTTPMiddleware: it costs a task per request, and the
one-click unsubscribe must stay fast): security headers on every response, and a cap on
the size of a request's body, refused with 413 before the app reads past it.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response (and no-store unless one says).

    The usual response sets none of them, and then gets the precomputed list as it is;
    only one that sets some of them itself (its own Cache-Control) is looked through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if any(name.lower() in _OURS for name, _ in headers):
                    present = {name.lower() for name, _ in headers}
                    headers.extend(h for h in _ALL if h[0] not in present)
                else:
                    headers += _ALL
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses a body over its cap with 413: by its Content-Length before reading a byte,
    else as it streams. The cap is `limit`, or a prefix's own in `by_prefix` (provider
    webhooks send batches far larger than any form).

    It raises HTTPException from `receive`, inside the app's exception handling, so the
    person sees the readable error page and nothing was changed.
    """

    def __init__(self, app: ASGIApp, limit: int, by_prefix: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.by_prefix = by_prefix or {}

    def cap(self, path: str) -> int:
        for prefix, limit in self.by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
            await self.app(scope, receive, send)
            return
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

        await self.app(scope, counted, send)
