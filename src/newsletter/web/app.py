"""The public side as one Starlette app: the subscriber pages, webhooks, archive, health.

    /subscribe, /confirm          double opt-in (web.subscribe)
    /unsubscribe, /manage         one button, RFC 8058 one-click, a subscriber's own page
    /webhooks/<provider>          bounces and complaints (web.webhooks)
    /archive/                     the static archive `newsletter archive` writes
    /healthz                      200 when the database answers, for the proxy and monitors

Every response carries the security headers; every request body is capped; every error
is a readable page (web.errors). No cookies are set anywhere, so no page can be the
target of a cross-site request forgery that rides on a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from newsletter.config import Settings
from newsletter.delivery.tokens import secret_key
from newsletter.runtime import quiet_collector
from newsletter.storage import Database, HeldConnection, checkpoint, open_engine
from newsletter.web.archive import default_archive_dir
from newsletter.web.confirmations import ConfirmationMailer
from newsletter.web.errors import http_error, server_error
from newsletter.web.front import Front
from newsletter.web.limits import RateLimiter
from newsletter.web.pages import Pages
from newsletter.web.public import Public
from newsletter.web.subscribe import subscribe_form, subscribe_routes
from newsletter.web.unsubscribe import unsubscribe_routes
from newsletter.web.webhooks import webhook_routes

log = logging.getLogger("newsletter.web")

PAGE_BODY_LIMIT = 16 * 1024  # a subscribe or manage form is a few hundred bytes
WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024  # SendGrid and Mailgun batch many events per request
RESEND_EVERY = 60.0  # seconds between looks for confirmation emails due again
CHECKPOINT_EVERY = 1.0  # seconds between copies of SQLite's log into the database file


class Archive(StaticFiles):
    """The archive folder; the Atom feed goes out as application/atom+xml.

    The folder may not exist yet (nothing archived): then every address is a 404 page.

    Python's mimetypes says text/xml or application/xml for .xml; feed readers and
    browsers recognise a feed by its own type.
    """

    async def check_config(self) -> None:
        """No archive written yet is a 404 page, not a server error."""
        if self.directory is None or not Path(self.directory).is_dir():
            raise HTTPException(404)

    def get_path(self, scope: Scope) -> str:
        """Hidden files (the archive's own state, a stray .git) are nobody's business."""
        path = super().get_path(scope)
        if any(part.startswith(".") for part in Path(path).parts):
            raise HTTPException(404)
        return path

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if "location" in response.headers:
            # Starlette writes the slash redirect with the request's Host header; a path
            # alone needs no host, so a forged Host cannot send a reader elsewhere.
            response.headers["location"] = _path_only(response.headers["location"])
        return response

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = Path(full_path).name
        if name.endswith(".atom") or name in ("feed.xml", "atom.xml"):
            response.headers["content-type"] = "application/atom+xml; charset=utf-8"
        return response


def _path_only(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))


async def archive_slash(request: Request) -> Response:
    """/archive → /archive/ as a path, not Starlette's redirect built from the Host."""
    return RedirectResponse(request.scope.get("root_path", "") + "/archive/", 307)


async def healthz(request: Request) -> Response:
    """200 when the database answers a query; 503 (and no detail) when it does not."""
    engine: Engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("health check: the database did not answer")
        return JSONResponse({"status": "unavailable"}, 503)
    return JSONResponse({"status": "ok"})


async def resend_confirmations(mailer: ConfirmationMailer, every: float) -> None:
    """Send the confirmation emails that are due: at start (what the last run left
    unsent), then every `every` seconds (what a provider outage held back)."""
    while True:
        try:
            await run_in_threadpool(mailer.send_due)
        except Exception:  # noqa: BLE001 - the loop must outlive a bad moment
            log.exception("sending due confirmation emails failed; trying again later")
        await asyncio.sleep(every)


async def checkpoints(writer: Executor, writes: Database, every: float) -> None:
    """Copy SQLite's log back into the database file every `every` seconds, in the
    writer thread: the event loop's own commits leave that to here (storage.checkpoint)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(every)
        try:
            await loop.run_in_executor(writer, checkpoint, writes)
        except Exception:  # noqa: BLE001 - the next one will do
            log.exception("copying the database's log back failed; trying again later")


def create_app(
    settings: Settings, environ: Mapping[str, str], *, archive_dir: Path | None = None
) -> Starlette:
    """The app `serve` runs; opens (and migrates) the workspace's database.

    The engine is `app.state.engine`; the app's lifespan disposes of it at shutdown.
    """
    secret = secret_key(environ, settings.provider.name)
    engine = open_engine(settings)
    pages = Pages(settings)
    mailer = ConfirmationMailer(settings, engine, environ, secret)
    # One thread writes what requests commit in groups (web.group_commit): one-click
    # unsubscribes and webhook events. One, because SQLite takes one writer at a time;
    # it keeps its connection open between groups.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="newsletter-writer")
    # SQLite: the thread keeps its connection, and a group is first tried on the event
    # loop with a connection that never waits for the lock (web.group_commit). PostgreSQL
    # keeps the pool (which checks a connection is alive) and the thread does it all:
    # on the loop, a write would wait on the network.
    sqlite = engine.dialect.name == "sqlite"
    writes: Database = HeldConnection(engine) if sqlite else engine
    at_once = HeldConnection(engine, wait=False) if sqlite else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(resend_confirmations(mailer, RESEND_EVERY))]
        if at_once is not None:
            tasks.append(asyncio.create_task(checkpoints(writer, writes, CHECKPOINT_EVERY)))
        try:
            with quiet_collector():
                yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            writer.shutdown(wait=True)
            for held in (writes, at_once):
                if isinstance(held, HeldConnection):
                    held.close()
            mailer.close()
            engine.dispose()

    # The busiest first: the router tries each route in turn.
    routes: list[BaseRoute] = [
        *unsubscribe_routes(),
        Mount("/webhooks", routes=webhook_routes(settings, writes, environ, writer)),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/", subscribe_form, methods=["GET", "HEAD"]),
        *subscribe_routes(),
        Route("/archive", archive_slash, methods=["GET", "HEAD"]),
        Mount(
            "/archive",
            app=Archive(
                directory=archive_dir or default_archive_dir(settings), html=True, check_dir=False
            ),
            name="archive",
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Front, limit=PAGE_BODY_LIMIT, by_prefix={"/webhooks/": WEBHOOK_BODY_LIMIT})
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.pages = pages
    app.state.public = Public(
        settings, engine, secret, pages, RateLimiter(), mailer, writer, writes, at_once
    )
    return app
