"""`newsletter preview`: the built issue in a local web page that follows the editor's changes.

One Starlette app on 127.0.0.1: the email at desktop and phone widths side by side, in
dark mode (its `prefers-color-scheme: dark` rules made unconditional), the text part,
the headers and the check results. watchfiles watches the issue folder, the templates
and newsletter.toml; each change rebuilds (as `send` would: only when the sources
changed) and the page, which polls /state, reloads. A build error shows in the page.
`screenshots` renders both views in headless Chromium instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import webbrowser
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from watchfiles import awatch

from newsletter.checks import BuiltEmail, Report, check_email, load_email
from newsletter.checks.darkmode import unconditional_dark
from newsletter.config import CONFIG_FILE, Settings, load_settings
from newsletter.errors import NewsletterError, UsageError
from newsletter.files import os_problem, write_atomic
from newsletter.workspace import default_templates_dir

HOST = "127.0.0.1"
DESKTOP_WIDTH = 640  # the 600 px email with the margins a desktop pane gives it
PHONE_WIDTH = 375  # an iPhone's screen in CSS pixels
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Preview:
    """The latest build of one issue, and a version that changes with every rebuild."""

    root: Path
    folder: Path
    version: int = 0
    email: BuiltEmail | None = None
    report: Report | None = None
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def rebuild(self) -> None:
        """Re-read the settings and rebuild if the sources changed; keep the last good build."""
        with self.lock:
            try:
                settings = load_settings(self.root)
                email = load_email(settings, self.folder)
                self.report = check_email(email)
                self.email, self.error = email, ""
            except NewsletterError as exc:
                self.error = str(exc)
            self.version += 1

    def watched(self) -> list[Path]:
        settings_dir = self.root / "templates"
        paths = [self.folder, self.root / CONFIG_FILE, default_templates_dir()]
        if settings_dir.is_dir() and settings_dir.resolve() != default_templates_dir().resolve():
            paths.append(settings_dir)
        return paths


def _pages(root: Path) -> jinja2.Environment:
    search = [str(root / "templates" / "preview"), str(default_templates_dir() / "preview")]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def preview_app(preview: Preview, watch: bool = True) -> Starlette:
    pages = _pages(preview.root)

    async def page(request: Request) -> Response:
        email, report = preview.email, preview.report
        html = pages.get_template("page.html").render(
            issue_key=preview.folder.name,
            subject=email.issue.subject if email else "",
            version=preview.version,
            error=preview.error,
            has_email=email is not None,
            findings=report.findings if report else (),
            headers=list(email.message.items()) if email else [],
            text=email.text if email else "",
            desktop_width=DESKTOP_WIDTH,
            phone_width=PHONE_WIDTH,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def email_html(request: Request) -> Response:
        if preview.email is None:
            return HTMLResponse("<p>No build yet.</p>", status_code=503)
        return HTMLResponse(preview.email.html, headers={"Cache-Control": "no-store"})

    async def email_dark(request: Request) -> Response:
        if preview.email is None:
            return HTMLResponse("<p>No build yet.</p>", status_code=503)
        html = unconditional_dark(preview.email.html)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse({"version": preview.version, "error": preview.error})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(_follow(preview, stop)) if watch else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task

    return Starlette(
        routes=[
            Route("/", page),
            Route("/email.html", email_html),
            Route("/email-dark.html", email_dark),
            Route("/state", state),
        ],
        lifespan=lifespan,
    )


async def _follow(preview: Preview, stop: asyncio.Event) -> None:
    """Rebuild after each batch of file changes, in a thread so the page keeps answering."""
    paths = [p for p in preview.watched() if p.exists()]
    async for _changes in awatch(*paths, stop_event=stop, debounce=200, step=50):
        await asyncio.to_thread(preview.rebuild)


def listen(port: int) -> socket.socket:
    """A socket on 127.0.0.1:`port`, or one clear line saying the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {HOST} is in use; pass --port N (--port 0 takes a free one)"
            ) from exc
        raise UsageError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from exc
    sock.listen(64)
    return sock


def serve(
    settings: Settings,
    folder: Path,
    *,
    port: int,
    open_browser: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the preview until Ctrl-C."""
    sock = listen(port)
    try:
        preview = Preview(settings.root, folder)
        preview.rebuild()
        server = uvicorn.Server(
            uvicorn.Config(preview_app(preview), log_level="warning", lifespan="on")
        )
        url = f"http://{HOST}:{sock.getsockname()[1]}/"
        announce(url)
        if open_browser:
            threading.Timer(0.5, webbrowser.open, (url,)).start()
        server.run(sockets=[sock])
    finally:
        sock.close()


# --- screenshots ------------------------------------------------------------------------------


def screenshots(settings: Settings, folder: Path, out_dir: Path) -> list[Path]:
    """desktop.png and phone.png of the built email, through headless Chromium."""
    email = load_email(settings, folder)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--screenshot: {os_problem(out_dir, exc)}") from exc
    # In a thread of its own: Playwright's sync API refuses a thread with an event loop.
    with ThreadPoolExecutor(max_workers=1) as thread:
        widths = {"desktop": DESKTOP_WIDTH, "phone": PHONE_WIDTH}
        shots = thread.submit(_render, email.html, widths).result()
    written = []
    for name, png in shots.items():
        path = out_dir / f"{name}.png"
        try:
            write_atomic(path, png)
        except OSError as exc:
            raise UsageError(f"--screenshot: {os_problem(path, exc)}") from exc
        written.append(path)
    return written


def _render(html: str, widths: dict[str, int], scheme: str = "light") -> dict[str, bytes]:
    if not CHROMIUM.is_file():
        raise UsageError(f"--screenshot needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    shots: dict[str, bytes] = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                for name, width in widths.items():
                    context = browser.new_context(viewport={"width": width, "height": 800})
                    try:
                        context.route("**/*", _web_only)
                        page = context.new_page()
                        page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
                        page.set_content(html, wait_until="load", timeout=30_000)
                        shots[name] = page.screenshot(full_page=True)
                    finally:
                        context.close()
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise UsageError(f"--screenshot: Chromium failed: {exc.message.splitlines()[0]}") from exc
    return shots


def _web_only(route: Any) -> None:
    """Images come over http(s), as in an inbox; nothing else leaves the page."""
    if urlsplit(route.request.url).scheme in ("http", "https", "data", "about"):
        route.continue_()
    else:
        route.abort()
