"""Our own access log: method, path, status and time; never a query string or an address.

uvicorn's access log prints the query string, and every link a subscriber follows carries
its token there (/unsubscribe?token=...). This log leaves the query out, replaces any
path segment with an @ in it (someone typing an address into the URL), and does not
record the client's IP address either: none of that is needed to run the service.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("newsletter.access")
LONGEST_PATH = 200
LINE = '"%s %s" %d %.1f ms'


def safe_path(path: str) -> str:
    """The path with address-like segments hidden, cut to LONGEST_PATH characters."""
    if "@" in path:
        path = "/".join("(hidden)" if "@" in part else part for part in path.split("/"))
    return path if len(path) <= LONGEST_PATH else path[:LONGEST_PATH] + "..."


def log_request(method: str, path: str, status: int, started: float) -> None:
    """One line at INFO on `newsletter.access` for a request answered with `status`.

    The record is made directly (`makeRecord`, then `handle`): `log.info` would also walk
    the stack for the caller's file and line, which no access line shows and which cost
    more than the rest of the line. The handlers and the format stay the logging
    configuration's; the text is formatted only by a handler that writes it.
    """
    milliseconds = (time.perf_counter() - started) * 1000
    args = (method, safe_path(path), status, milliseconds)
    log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, LINE, args, None))


def logging_requests() -> bool:
    return log.isEnabledFor(logging.INFO)
