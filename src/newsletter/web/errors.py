"""Error answers: a readable page where a person sees it, plain text for machines.

Every error status the app gives (400, 403, 404, 405, 413, 429, 500, 503) goes through
here, so a person who follows a broken link, or a form that was too big, reads what
happened and what to do, in the newsletter's language and look. Provider webhooks get a
short plain-text answer: nobody reads those but a log.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from newsletter.web.pages import Pages
from newsletter.web.security import SECURITY_HEADERS

log = logging.getLogger("newsletter.web")

# What the page says for each status: a title and a sentence that says what to do.
EXPLAINED: dict[int, tuple[str, str]] = {
    400: ("This request could not be read", "The form or link was incomplete or altered. "
          "Please go back and try again, or use the link from your email as it is."),
    403: ("This request was refused", "A form on another site may not do this here."),
    404: ("Page not found", "There is nothing at this address. Check the link, or use "
          "the one in your most recent email."),
    405: ("This page cannot do that", "Please use the page's own button or form."),
    413: ("That was too much to send", "The form sent far more than it should. "
          "Please go back and try again."),
    429: ("Too many requests", "Please wait a few minutes and try again."),
    500: ("Something went wrong on our side", "Nothing was changed. Please try again "
          "later."),
    503: ("Temporarily unavailable", "Please try again in a few minutes."),
}  # fmt: skip
MACHINE_PREFIXES = ("/webhooks/", "/healthz")


def error_response(
    request: Request, status: int, headers: dict[str, str] | None = None
) -> Response:
    """The answer for `status`: the error page, or a line of text for a machine's request."""
    title, advice = EXPLAINED.get(status, EXPLAINED[400 if status < 500 else 500])
    if request.url.path.startswith(MACHINE_PREFIXES):
        return PlainTextResponse(f"{status} {title}\n", status, headers=headers)
    pages: Pages = request.app.state.pages
    return pages.response(
        "error.html", {"status": status, "title": title, "advice": advice}, status, headers
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(request, exc.status_code, dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    # The path only: a query string may hold a token.
    log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
    response = error_response(request, 500)
    # This answer goes out through Starlette's outermost middleware, past web.front.
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response
