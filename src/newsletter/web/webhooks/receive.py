"""One webhook request, from bytes to stored events: the endpoint every provider shares.

    read the body (413 past the limit)
    → authenticate: NEWSLETTER_WEBHOOK_AUTH's basic auth, or the provider's signature (401)
    → read the events (400 for anything that is not the provider's shape)
    → store and apply them in one transaction (audience.feedback), then answer 200

Nothing is changed unless every step before the last succeeded, and a batch is stored
whole or not at all. The requests of one moment share that transaction (a group commit,
web.group_commit); each is answered only once it has committed. A database that cannot
take the write answers 503, which every provider retries later. Logs name the provider,
the status and (at DEBUG) counts: never an address, a header or a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.audience.feedback import Outcome, Report
from newsletter.errors import StorageError
from newsletter.web.group_commit import GroupCommit
from newsletter.web.webhooks.auth import BasicAuth, Refused, now, read_body

log = logging.getLogger("newsletter.web.webhooks")


class Provider(Protocol):
    """A provider's webhook: how it is signed and how its events read."""

    name: str
    has_signature: bool

    def verify(self, headers: Mapping[str, str], body: bytes, clock: float) -> None: ...

    def reports(self, body: bytes, headers: Mapping[str, str]) -> list[Report]: ...


class WebhookEndpoint:
    """/webhooks/<provider>: `handle` is the route's endpoint."""

    def __init__(
        self,
        provider: Provider,
        store: GroupCommit[list[Report], list[Outcome]],
        basic: BasicAuth | None,
        clock: Callable[[], float] = now,
    ) -> None:
        self.provider = provider
        self.store = store
        self.basic = basic
        self.clock = clock

    async def handle(self, request: Request) -> Response:
        try:
            body = await read_body(request)
            self.authenticate(request, body)
            reports = self.provider.reports(body, request.headers)
            outcomes = await self.store.submit(reports)
        except Refused as refused:
            log.warning(
                "webhook %s refused: %s %s", self.provider.name, refused.status, refused.text
            )
            challenge = refused.status == 401 and self.basic is not None
            headers = {"WWW-Authenticate": 'Basic realm="webhooks"'} if challenge else None
            return JSONResponse({"error": refused.text}, refused.status, headers=headers)
        except StorageError:
            log.exception("webhook %s: the database refused the events", self.provider.name)
            return JSONResponse(
                {"error": "the events could not be stored; try again later"},
                503,
                headers={"Retry-After": "60"},
            )
        recorded = sum(o.new for o in outcomes)
        # DEBUG: the access log has a line for every request already, and a provider
        # that posts one event a request would double the log; the events are stored.
        log.debug("webhook %s: %d events, %d new", self.provider.name, len(outcomes), recorded)
        return JSONResponse({"events": len(outcomes), "recorded": recorded})

    def authenticate(self, request: Request, body: bytes) -> None:
        """Basic auth when it is configured and offered; otherwise the signature."""
        header = request.headers.get("authorization")
        if self.basic is not None and header is not None:
            if self.basic.accepts(header):
                return
            if not self.provider.has_signature:
                raise Refused(401, "wrong user or password")
        self.provider.verify(request.headers, body, self.clock())
