"""`check --links` against a web server on 127.0.0.1: broken, slow, not an image, and polite.

The workspace's site is the loopback server, so every link and image of the example
points at it and nothing leaves the machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from newsletter.checks import check_issue
from newsletter.checks.online import POOL
from newsletter.cli import app
from newsletter.config import load_settings

from conftest import EXAMPLE, move_site

SLOW_SECONDS = 5.0  # well past the test's timeout, even on a busy machine


class LoopbackOnly(httpx.HTTPTransport):
    """Fails the test at once if the checker asks for anything but 127.0.0.1."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "127.0.0.1":
            pytest.fail(f"the link checker left the machine: {request.url}")
        return super().handle_request(request)


def client(timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(
        transport=LoopbackOnly(limits=httpx.Limits(max_connections=POOL)),
        timeout=timeout,
        follow_redirects=True,
    )


class Site(ThreadingHTTPServer):
    daemon_threads = True
    # The checker opens up to 8 connections at once: past the default backlog of 5 the
    # kernel drops one and the client tries again a second later, a slow link for nothing.
    request_queue_size = 64
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server: Site

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        site = self.server
        with site.lock:
            site.in_flight += 1
            site.most_in_flight = max(site.most_in_flight, site.in_flight)
        self._answer()

    def _answer(self) -> None:
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(SLOW_SECONDS)
        if path.startswith("/wait/"):
            time.sleep(0.2)
        # Counted down before the reply goes out: once the checker has it, it may open its
        # next connection at once (HTTP/1.0, one request a connection), before this
        # thread would otherwise get to count down.
        with self.server.lock:
            self.server.in_flight -= 1
        status = 404 if path == "/missing" else 200
        kind = "image/png" if path.endswith(".png") or path.endswith(".jpg") else "text/html"
        body = b"<p>hello</p>" if kind == "text/html" else b"\x89PNG\r\n\x1a\n"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the checker gave up waiting, as it should

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def on_site(workspace: Path, site: Site, text: str) -> str:
    """The example workspace with its site on the loopback server and `text` in an article.

    Every URL of the example, in newsletter.toml and in the articles, moves to the server.
    """
    base = f"http://127.0.0.1:{site.server_address[1]}"
    move_site(workspace, base)
    article = workspace / "issues" / EXAMPLE / "library-reopens.md"
    article.write_text(article.read_text() + "\n" + text.replace("BASE", base) + "\n")
    return base


def test_broken_slow_and_not_an_image(workspace: Path, site: Site, unused_port: int) -> None:
    base = on_site(
        workspace,
        site,
        "[fine](BASE/ok) [gone](BASE/missing) [slow](BASE/slow) "
        f"[closed](http://127.0.0.1:{unused_port}/)\n\n"
        "![A photo](BASE/photo.png) ![Not a photo](BASE/page)",
    )
    settings = load_settings(workspace, environ={})
    with client(timeout=1.5) as http:
        report = check_issue(settings, workspace / "issues" / EXAMPLE, links=True, client=http)
    online = {"link-broken", "link-slow", "image-broken"}
    found = {(f.rule, f.message.split()[1]) for f in report.findings if f.rule in online}
    assert found == {
        ("link-broken", f"{base}/missing"),
        ("link-broken", f"http://127.0.0.1:{unused_port}/"),
        ("link-slow", f"{base}/slow"),
        ("image-broken", f"{base}/page"),
    }
    missing = next(f for f in report.findings if f.message.startswith(f"link {base}/missing"))
    assert "HTTP 404" in missing.message and missing.place.selector


def test_the_unsubscribe_link_is_never_fetched(workspace: Path, site: Site) -> None:
    on_site(workspace, site, "")
    seen: list[str] = []
    original = Handler._answer

    def record(handler: Handler) -> None:
        seen.append(handler.path)
        original(handler)

    Handler._answer = record  # type: ignore[method-assign]
    try:
        with client() as http:
            check_issue(
                load_settings(workspace, environ={}),
                workspace / "issues" / EXAMPLE,
                links=True,
                client=http,
            )
    finally:
        Handler._answer = original  # type: ignore[method-assign]
    assert seen and not any(path.startswith("/unsubscribe") for path in seen)
    assert len(seen) == len(set(seen))  # each URL once, however often it is linked
    assert "/news/library-reopens" in seen
    assert any(path.startswith(f"/archive/{EXAMPLE}/library-reading-room-") for path in seen)


def test_requests_go_a_few_at_a_time(workspace: Path, site: Site) -> None:
    on_site(workspace, site, " ".join(f"[{n}](BASE/wait/{n})" for n in range(24)))
    settings = load_settings(workspace, environ={})
    with client() as http:
        check_issue(settings, workspace / "issues" / EXAMPLE, links=True, client=http)
    assert 1 < site.most_in_flight <= POOL


def test_check_links_command_fails_on_a_broken_link(workspace: Path, site: Site) -> None:
    base = on_site(workspace, site, "[gone](BASE/missing)")
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "check", "welcome", "--links"])
    assert result.exit_code == 1
    assert f"error link-broken: link {base}/missing is broken: HTTP 404" in result.stdout


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, then closed: refused when connected)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
