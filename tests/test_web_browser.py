"""The subscriber pages in a real browser: Debian's Chromium, driven by Playwright, against
a real uvicorn server on 127.0.0.1. No JavaScript on the pages; the browser only clicks.

Every request the browser makes outside 127.0.0.1 is aborted: links in the emails point
at the newsletter's site_url, so the tests open them on the local server instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from web_support import (
    ENVIRON,
    engine_of,
    link_in,
    outbox_messages,
    running_server,
    state_of,
    wait_for,
)

from newsletter.audience.subscribers import add_subscriber
from newsletter.cli import app as cli_app
from newsletter.config import Settings, load_settings
from newsletter.web.app import create_app

ISSUE = "2026-11-26-welcome"
PHONE = {"width": 375, "height": 740}


@pytest.fixture
def public_settings(workspace: Path) -> Settings:
    return load_settings(workspace, environ={"NEWSLETTER_TOPICS": "events|planning"})


@pytest.fixture
def server(public_settings: Settings) -> Iterator[tuple[str, Any]]:
    """(base URL, the app) of a running server on the workspace."""
    app = create_app(public_settings, ENVIRON)
    with running_server(app) as base:
        yield base, app


def local(url: str, settings: Settings, base: str) -> str:
    """A link from an email, opened on the local server instead of the site."""
    return base + url.removeprefix(settings.site_url.rstrip("/"))


def _loopback_only(route: Any) -> None:
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    context.route("**/*", _loopback_only)
    opened = context.new_page()
    yield opened
    context.close()


def fits_the_phone(page: Any) -> bool:
    width = page.evaluate("document.documentElement.scrollWidth")
    return bool(width <= PHONE["width"])


def test_subscribe_through_the_form_and_confirm_from_the_email(
    page: Any, server: tuple[str, Any], public_settings: Settings
) -> None:
    base, app = server
    page.goto(f"{base}/subscribe")
    assert page.locator("html").get_attribute("lang") == public_settings.language
    assert fits_the_phone(page)
    page.get_by_label("Email address").fill("ana@example.org")
    page.get_by_label("Name").fill("Ana Lima")
    page.get_by_label("events").check()
    page.get_by_role("button", name="Subscribe").click()
    assert page.get_by_role("heading", name="Check your inbox").is_visible()

    assert wait_for(lambda: outbox_messages(public_settings, "confirmations"))
    (message,) = outbox_messages(public_settings, "confirmations")
    page.goto(local(link_in(message, "/confirm"), public_settings, base))
    engine = engine_of(app)
    assert state_of(engine, "ana@example.org")["status"] == "pending"  # type: ignore[index]
    page.get_by_role("button", name="Yes, subscribe me").click()
    assert page.get_by_role("heading", name="You are subscribed").is_visible()
    assert state_of(engine, "ana@example.org") == {
        "id": 1, "status": "active", "name": "Ana Lima", "tags": ["events"]
    }  # fmt: skip


def test_unsubscribe_from_a_real_sent_issue(
    page: Any, server: tuple[str, Any], public_settings: Settings
) -> None:
    base, app = server
    engine = engine_of(app)
    add_subscriber(engine, "bo@example.org", name="Bo")
    runner = CliRunner()
    workspace = ["--workspace", str(public_settings.root)]
    built = runner.invoke(cli_app, [*workspace, "build", "welcome"], env=dict(ENVIRON))
    assert built.exit_code == 0, built.output
    sent = runner.invoke(cli_app, [*workspace, "send", "welcome", "--yes"], env=dict(ENVIRON))
    assert sent.exit_code == 0, sent.output
    (message,) = outbox_messages(public_settings, ISSUE)

    page.goto(local(link_in(message, "/unsubscribe"), public_settings, base))
    assert fits_the_phone(page)
    assert state_of(engine, "bo@example.org")["status"] == "active"  # type: ignore[index]
    page.get_by_role("button", name="Unsubscribe").click()
    assert page.get_by_role("heading", name="You are unsubscribed").is_visible()
    assert page.get_by_role("button", name="Subscribe again").is_visible()
    assert state_of(engine, "bo@example.org")["status"] == "unsubscribed"  # type: ignore[index]


def test_the_manage_page_changes_topics(
    page: Any, server: tuple[str, Any], public_settings: Settings
) -> None:
    from web_support import SECRET

    from newsletter.delivery.tokens import unsubscribe_token

    base, app = server
    engine = engine_of(app)
    ana = add_subscriber(engine, "ana@example.org", name="Ana", tags=["events", "staff"])
    page.emulate_media(color_scheme="dark")
    page.goto(f"{base}/manage?token={unsubscribe_token(ana.id, ISSUE, SECRET)}")
    assert fits_the_phone(page)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(250, 250, 247)"  # the dark palette, not the light one
    assert page.get_by_label("events").is_checked()
    page.get_by_label("events").uncheck()
    page.get_by_label("planning").check()
    page.get_by_label("Your name").fill("Ana Lima")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_text("Saved.").is_visible()
    assert page.get_by_label("planning").is_checked()
    assert state_of(engine, "ana@example.org") == {
        "id": 1, "status": "active", "name": "Ana Lima", "tags": ["planning", "staff"]
    }  # fmt: skip
