"""Our own access log: method, path, status and time; never a query string or an address.

uvicorn's access log prints the query string, and every link a subscriber follows carries
its token there (/unsubscribe?token=...). This log leaves the query out, replaces any
path segment with an @ in it (someone typing an address into the URL), and does not
record the client's IP address either: none of that is needed to run the service.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("newsletter.access")
LONGEST_PATH = 200
LINE = '"%s %s" %d %.1f ms'


def safe_path(path: str) -> str:
    """The path with address-like segments hidden, cut to LONGEST_PATH characters."""
    if "@" in path:
        path = "/".join("(hidden)" if "@" in part else part for part in path.split("/"))
    return path if len(path) <= LONGEST_PATH else path[:LONGEST_PATH] + "..."


class AccessLog:
    """Logs one line per HTTP request at INFO on `newsletter.access`.

    The record is made directly (`makeRecord`, then `handle`): `log.info` would also walk
    the stack for the caller's file and line, which no access line shows and which cost
    more than the rest of the line. The handlers and the format stay the logging
    configuration's; the text is formatted only by a handler that writes it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            milliseconds = (time.perf_counter() - started) * 1000
            args = (scope["method"], safe_path(scope["path"]), status, milliseconds)
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, LINE, args, None))
