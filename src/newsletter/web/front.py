"""The one middleware every request of `serve` passes through, in one layer.

It caps the request's body (web.security), gives the answer its security headers
(web.security) and writes the access log line (web.access_log). A plain ASGI middleware:
BaseHTTPMiddleware costs a task per request. One layer, not three: each layer awaited
the next and wrapped every call to `send` again, for work one closure can do. (All three,
logging included, were about a third of a one-click unsubscribe's CPU; being one layer
saves only a little of that, the rest is the work itself.)
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.web.access_log import log_request, logging_requests
from newsletter.web.security import BodyCap, with_security_headers


class Front:
    def __init__(self, app: ASGIApp, limit: int, by_prefix: dict[str, int] | None = None) -> None:
        self.app = app
        self.body = BodyCap(limit, by_prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_security_headers(list(message.get("headers", ())))
            await send(message)

        try:
            await self.app(scope, self.body.receive(scope, receive), answer)
        finally:
            if logging_requests():
                log_request(scope["method"], scope["path"], status, started)
