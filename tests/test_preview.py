"""`newsletter preview` in Debian's Chromium through Playwright: both widths, dark mode,
text, headers, checks; the reload after a file changes; a build error in the page;
`--screenshot`; a port in use.

The preview runs as the command an editor types, on 127.0.0.1. The browser may load
pages from 127.0.0.1 only: every other request (the example's images) is refused.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.web.preview import DESKTOP_WIDTH, PHONE_WIDTH

from conftest import EXAMPLE, move_site


def _loopback_only(route: Any) -> None:
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def preview(workspace: Path) -> Iterator[str]:
    """`newsletter preview welcome --port 0` running; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--workspace", str(workspace)]
        + ["preview", "welcome", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"Preview of {EXAMPLE} at http://127.0.0.1:"), (
            line + process.stderr.read()  # type: ignore[union-attr]
        )
        yield line.split(" at ")[1].split()[0]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def open_page(browser: Any, url: str, width: int = 1500) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 1000})
    context.route("**/*", _loopback_only)
    page = context.new_page()
    page.goto(url)
    return page


def frame_of(page: Any, name: str) -> Any:
    handle = page.wait_for_selector(f"iframe#{name}")
    frame = handle.content_frame()
    frame.wait_for_load_state("load")
    return frame


def test_desktop_phone_and_dark_side_by_side(browser: Any, preview: str) -> None:
    page = open_page(browser, preview)
    try:
        boxes = {
            name: page.locator(f"iframe#{name}").bounding_box()
            for name in ("desktop", "phone", "dark")
        }
        assert round(boxes["desktop"]["width"]) == DESKTOP_WIDTH + 2  # and its border
        assert round(boxes["phone"]["width"]) == PHONE_WIDTH + 2
        assert boxes["desktop"]["y"] == boxes["phone"]["y"] == boxes["dark"]["y"]  # side by side
        assert boxes["desktop"]["x"] < boxes["phone"]["x"] < boxes["dark"]["x"]
        desktop, phone, dark = (frame_of(page, n) for n in ("desktop", "phone", "dark"))
        container = "table.container"
        assert desktop.locator(container).bounding_box()["width"] == 600
        assert phone.locator(container).bounding_box()["width"] <= PHONE_WIDTH
        for frame, width in ((desktop, DESKTOP_WIDTH), (phone, PHONE_WIDTH)):
            assert frame.evaluate("document.documentElement.scrollWidth") <= width
        # Dark mode: the template's dark colours, in a browser whose scheme is light.
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is False
        background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)"  # #111418
        assert desktop.evaluate("getComputedStyle(document.body).backgroundColor") == (
            "rgb(243, 240, 232)"  # #f3f0e8
        )
        assert "No errors, no warnings." in page.locator("#checks").inner_text()
        assert "Read it on our website:" in page.locator("#text").inner_text()
        headers = page.locator("#headers").inner_text()
        assert "List-Unsubscribe-Post" in headers and "List-Unsubscribe=One-Click" in headers
    finally:
        page.context.close()


def test_a_changed_file_rebuilds_and_reloads(browser: Any, preview: str, workspace: Path) -> None:
    issue_toml = workspace / "issues" / EXAMPLE / "issue.toml"
    article = workspace / "issues" / EXAMPLE / "library-reopens.md"
    page = open_page(browser, preview)
    try:
        heading = page.locator("header h1")
        assert heading.inner_text().startswith("Millbrook in November")
        issue_toml.write_text(
            issue_toml.read_text().replace("Millbrook in November", "Millbrook in December")
        )
        page.wait_for_function(
            "document.querySelector('header h1').innerText.startsWith('Millbrook in December')",
            timeout=20_000,
        )
        frame = frame_of(page, "desktop")
        assert "Millbrook in December" in frame.title()
        # A build error shows in the page, and the last good build stays below it.
        good = article.read_text()
        article.write_text(good.replace("title:", "colour: blue\ntitle:", 1))
        page.wait_for_selector("#build-error", timeout=20_000)
        error = page.locator("#build-error").inner_text()
        assert "library-reopens.md:2" in error and "colour" in error
        assert page.locator("iframe#desktop").count() == 1
        article.write_text(good + "\nOpening times: TK.\n")
        page.wait_for_selector("#build-error", state="detached", timeout=20_000)
        assert "placeholder-text" in page.locator("#checks").inner_text()
    finally:
        page.context.close()


def test_screenshot_writes_both_views(workspace: Path, tmp_path: Path) -> None:
    # Images would load from the site: move it to a loopback port nobody listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    move_site(workspace, base)
    out = tmp_path / "shots"
    result = CliRunner().invoke(
        app, ["--workspace", str(workspace), "preview", "welcome", "--screenshot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["desktop.png", "phone.png"]
    for name, width in (("desktop", DESKTOP_WIDTH), ("phone", PHONE_WIDTH)):
        with Image.open(out / f"{name}.png") as image:
            assert image.format == "PNG" and image.width == width
            assert image.height > 1500  # the whole email, not one screen of it


def test_a_port_in_use_is_one_line(workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["--workspace", str(workspace), "preview", "welcome", "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 is in use; pass --port N (--port 0 takes a free one)\n"
    )
