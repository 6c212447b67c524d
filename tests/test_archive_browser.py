"""The archive in a real browser: Debian's Chromium through Playwright, the archive served
by `serve`'s app (create_app) on 127.0.0.1.

What only a browser can tell: that no page scrolls sideways on a desktop or a phone, that
the email's "view in browser" link lands on its issue's page, and that axe-core finds no
serious or critical accessibility violation, in light and in dark mode. Every request that
is not to the local server (or a file: for the email) is aborted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import axe_core_python
import pytest
import uvicorn
from test_archive import WINTER, add_image_issue
from test_email_in_browser import copy_example

from newsletter.compose.build import build_issue
from newsletter.config import Settings, load_settings
from newsletter.web.app import create_app
from newsletter.web.archive import write_archive

from conftest import EXAMPLE

AXE_SCRIPT = Path(axe_core_python.__file__).with_name("axe.min.js")
SECRET = {"NEWSLETTER_SECRET_KEY": "a-test-secret-that-is-long-enough"}


@dataclass(frozen=True)
class Site:
    url: str  # http://127.0.0.1:<port>/
    settings: Settings
    email: Path  # the example's built email.html, whose links point at `url`


@contextlib.contextmanager
def serving(app: Any, sock: socket.socket) -> Iterator[None]:
    """`app` on uvicorn in a thread, on a socket bound already; stopped when done."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The example and a second issue, built for a site at 127.0.0.1, archived and served.

    The port is taken first, so the build's links (view in browser, images) name it.
    """
    issue_dir = copy_example(tmp_path_factory.mktemp("archive-site") / "ws")
    root = issue_dir.parents[1]
    add_image_issue(root)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        settings = load_settings(root, environ={"NEWSLETTER_SITE_URL": url})
        email = build_issue(settings, issue_dir).out_dir / "email.html"
        out = root / "public" / "archive"
        write_archive(settings, out, include_unsent=True)
        with serving(create_app(settings, SECRET, archive_dir=out), sock):
            yield Site(url=url, settings=settings, email=email)


def open_page(browser: Any, site: Site, address: str, width: int, scheme: str = "light") -> Any:
    """A page at `width` CSS pixels showing `address`; only the local server is reached.

    CSP is bypassed so that axe-core can be injected: serve's policy allows no script.
    """
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)

    def local_only(route: Any) -> None:
        if route.request.url.startswith((site.url, "file:")):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    page.emulate_media(color_scheme=scheme)
    response = page.goto(address)
    assert response is None or response.ok, f"{address}: {response.status}"
    return page


PAGES = ["", f"{EXAMPLE}/", f"{WINTER}/"]


@pytest.mark.parametrize("width", [1024, 375])
@pytest.mark.parametrize("path", PAGES, ids=["index", "example", "winter"])
def test_no_page_scrolls_sideways(browser: Any, site: Site, path: str, width: int) -> None:
    page = open_page(browser, site, f"{site.url}archive/{path}", width)
    try:
        scroll_width, inner_width = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        headings = page.locator("h1").all_inner_texts()
        # Images the archive publishes (the example's own is a path on the site).
        broken = page.evaluate(
            "(base) => Array.from(document.querySelectorAll('main img'))"
            ".filter((img) => img.src.startsWith(base))"
            ".filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.src)",
            f"{site.url}archive/",
        )
        shown = page.evaluate(
            "(base) => Array.from(document.querySelectorAll('main img'))"
            ".filter((img) => img.src.startsWith(base) && img.naturalWidth > 0).length",
            f"{site.url}archive/",
        )
    finally:
        page.context.close()
    assert headings, "no heading: did the page load?"
    assert broken == [], f"images that did not load: {broken}"
    if path == f"{WINTER}/":
        assert shown == 2, "the winter issue's image (twice) should show"
    assert scroll_width <= inner_width, f"{scroll_width}px wide in a {inner_width}px window"


def test_the_emails_view_in_browser_link_lands_on_its_page(browser: Any, site: Site) -> None:
    page = open_page(browser, site, site.email.as_uri(), 1024)
    try:
        page.get_by_role("link", name="View this email in your browser").click()
        page.wait_for_url(f"{site.url}archive/{EXAMPLE}/")
        subject = page.locator("h1.issue-subject").inner_text()
        titles = page.locator("h2").all_inner_texts()
        page.get_by_role("link", name="All issues").click()
        page.wait_for_url(f"{site.url}archive/")
        listed = page.locator("main li h3").all_inner_texts()
    finally:
        page.context.close()
    assert subject.startswith("Millbrook in November: the library reopens")
    assert "The library reopens with longer hours" in titles
    assert listed == ["Winter in Millbrook", subject]


_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
  }));
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", PAGES[:2], ids=["index", "example"])
def test_axe_finds_no_serious_violation(browser: Any, site: Site, path: str, scheme: str) -> None:
    page = open_page(browser, site, f"{site.url}archive/{path}", 1024, scheme)
    try:
        page.add_script_tag(path=str(AXE_SCRIPT))
        violations = page.evaluate(_AXE)
        dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    finally:
        page.context.close()
    assert dark == (scheme == "dark")
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, "\n".join(
        f"{v['impact']} {v['id']}: {v['help']} {v['nodes']}" for v in serious
    )


def test_the_axe_check_sees_a_serious_violation(browser: Any, site: Site) -> None:
    """The harness above can fail: faint text and an image without alt text are caught."""
    page = open_page(browser, site, f"{site.url}archive/", 1024)
    try:
        page.set_content(
            '<html lang="en"><body><main><p style="color:#ccc;background:#fff">faint</p>'
            '<img src="x.png"></main></body></html>'
        )
        page.add_script_tag(path=str(AXE_SCRIPT))
        violations = page.evaluate(_AXE)
    finally:
        page.context.close()
    serious = {v["id"] for v in violations if v["impact"] in ("serious", "critical")}
    assert {"color-contrast", "image-alt"} <= serious
