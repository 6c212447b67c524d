"""What the subscriber pages share: settings, database, signing key, templates, limits.

One `Public` per app, at `app.state.public`. Its helpers turn the usual refusals into
HTTP errors the app's handlers show as readable pages (web.errors), and read the signed
token a link or a form carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Engine
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from newsletter.audience.consent import Left, unsubscribe_many
from newsletter.config import Settings
from newsletter.delivery.tokens import LONGEST_TOKEN, read_subscriber_token
from newsletter.storage import Database, HeldConnection
from newsletter.web.confirmations import ConfirmationMailer
from newsletter.web.group_commit import GroupCommit
from newsletter.web.limits import RateLimiter, client_of
from newsletter.web.pages import Pages

# Why a link did not work, for the page that says so: (status, title, advice).
BROKEN_LINK = (
    400,
    "This link does not work",
    "It may have been cut short or changed on its way. Please open it again from your "
    "email, or copy the whole address into your browser.",
)
UNKNOWN_SUBSCRIBER = (
    404,
    "We could not find your subscription",
    "This address is no longer on our list, so there is nothing to change: "
    "you will not receive any more emails from us.",
)


# How long a group of unsubscribes waits for company (web.group_commit): at a thousand
# one-clicks a second, about five share a commit, for 5 ms more on each answer.
LEAVING_GATHER = 0.005


@dataclass
class Public:
    settings: Settings
    engine: Engine
    secret: str
    pages: Pages
    limiter: RateLimiter
    mailer: ConfirmationMailer
    writer: Executor | None = None  # the thread for the database writes of requests
    writes: Database | None = None  # the connection that thread keeps (else the engine's)
    # A connection that never waits for a lock, for writing on the event loop itself when
    # nobody else is writing (SQLite; web.group_commit).
    at_once: HeldConnection | None = None
    leaving: GroupCommit[int, Left] = field(init=False)

    def __post_init__(self) -> None:
        # Unsubscribes, one-click above all, are committed in groups (web.group_commit).
        self.leaving = GroupCommit(
            partial(unsubscribe_many, self.writes or self.engine),
            self.writer,
            gather=LEAVING_GATHER,
            at_once=partial(unsubscribe_many, self.at_once) if self.at_once else None,
        )

    async def leave(self, subscriber_id: int) -> Left:
        """The subscriber leaves; answered once that is committed."""
        return await self.leaving.submit(subscriber_id)

    def page(
        self,
        name: str,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        return self.pages.response(name, context, status_code)

    def problem(self, problem: tuple[int, str, str]) -> HTMLResponse:
        status, title, advice = problem
        return self.page("link.html", {"title": title, "advice": advice}, status)

    def limit(self, request: Request, kind: str) -> None:
        """429 (a readable page saying when to come back) once the client's bucket is dry."""
        if not self.limiter.allow(kind, client_of(request)):
            raise HTTPException(429, headers={"Retry-After": str(self.limiter.retry_after(kind))})

    def subscriber_token(self, request: Request, token: str) -> tuple[int, str] | None:
        """(subscriber id, issue) of a genuine link token; a bad one spends the client's
        allowance of bad tokens (guessing is slow), then 429."""
        found = read_subscriber_token(token, self.secret) if len(token) <= LONGEST_TOKEN else None
        if found is None:
            self.limit(request, "bad-token")
        return found


def public_of(request: Request) -> Public:
    public: Public = request.app.state.public
    return public
