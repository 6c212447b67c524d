"""/unsubscribe (page, button and RFC 8058 one-click) and /manage, the database asserted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from web_support import (
    ENVIRON,
    SECRET,
    TestClient,
    engine_of,
    link_in,
    outbox_messages,
    snapshot,
    state_of,
    token_of,
    wait_for,
)

from newsletter.audience.subscribers import add_subscriber, remove_subscriber
from newsletter.compose.build import build_issue
from newsletter.config import Settings, load_settings
from newsletter.delivery.engine import send_issue
from newsletter.delivery.tokens import sign, unsubscribe_token
from newsletter.storage import confirmations
from newsletter.web.app import create_app

ISSUE = "2026-11-26-welcome"
ONE_CLICK = "List-Unsubscribe=One-Click"
stamp_past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def public_settings(workspace: Path) -> Settings:
    return load_settings(workspace, environ={"NEWSLETTER_TOPICS": "events|planning"})


@pytest.fixture
def client(public_settings: Settings) -> Iterator[TestClient]:
    app = create_app(public_settings, ENVIRON)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def ana(client: TestClient) -> str:
    """An active subscriber with a public topic and an editors' tag; her link's token."""
    found = add_subscriber(
        engine_of(client), "ana@example.org", name="Ana", tags=["events", "staff"]
    )
    return unsubscribe_token(found.id, ISSUE, SECRET)


def status(client: TestClient) -> str:
    found = state_of(engine_of(client), "ana@example.org")
    assert found is not None
    return str(found["status"])


def test_the_page_shows_one_button_and_changes_nothing(client: TestClient, ana: str) -> None:
    page = client.get("/unsubscribe", params={"token": ana})
    assert page.status_code == 200
    assert page.text.count("<button") == 1
    assert "<script" not in page.text
    assert status(client) == "active"


def test_pressing_the_button_unsubscribes_and_offers_to_come_back(
    client: TestClient, ana: str
) -> None:
    page = client.post("/unsubscribe", data={"token": ana})
    assert page.status_code == 200
    assert "You are unsubscribed" in page.text and 'action="/resubscribe"' in page.text
    assert status(client) == "unsubscribed"
    again = client.post("/unsubscribe", data={"token": ana})  # twice is fine
    assert again.status_code == 200 and status(client) == "unsubscribed"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        # RFC 8058 §3.1 exactly: form-encoded
        (ONE_CLICK.encode(), {"content-type": "application/x-www-form-urlencoded"}),
        # no content type at all, and text/plain
        (ONE_CLICK.encode(), {}),
        (ONE_CLICK.encode(), {"content-type": "text/plain"}),
        # percent-encoded, with a trailing newline, with a charset parameter
        (b"List-Unsubscribe=One%2DClick", {"content-type": "application/x-www-form-urlencoded"}),
        (
            ONE_CLICK.encode() + b"\r\n",
            {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        ),
        # multipart/form-data, as some providers send it
        (
            b'--b0\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n--b0--\r\n",
            {"content-type": "multipart/form-data; boundary=b0"},
        ),
    ],
)
def test_one_click_unsubscribes_and_answers_200(
    client: TestClient, ana: str, body: bytes, headers: dict[str, str]
) -> None:
    answer = client.post(
        f"/unsubscribe?token={ana}", content=body, headers=headers, follow_redirects=False
    )
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers and "location" not in answer.headers
    assert status(client) == "unsubscribed"


def test_one_click_from_a_real_sent_message(client: TestClient, public_settings: Settings) -> None:
    """The List-Unsubscribe header of a message in the outbox, POSTed as Gmail does."""
    engine = engine_of(client)
    add_subscriber(engine, "ana@example.org")
    folder = public_settings.issues_dir / ISSUE
    build_issue(public_settings, folder)
    send_issue(public_settings, folder, environ=ENVIRON)
    (message,) = outbox_messages(public_settings, ISSUE)
    assert message["List-Unsubscribe-Post"] == ONE_CLICK
    url = message["List-Unsubscribe"].strip("<>")
    path = url.removeprefix(public_settings.site_url.rstrip("/"))
    answer = client.post(
        path,
        content=ONE_CLICK.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert status(client) == "unsubscribed"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "test",  # what test copies carry
        "not.a-token",
        "x" * 5000,
    ],
)
def test_a_bad_token_changes_nothing_and_says_so(client: TestClient, ana: str, bad: str) -> None:
    engine = engine_of(client)
    before = snapshot(engine)
    page = client.get("/unsubscribe", params={"token": bad})
    assert page.status_code == 400 and "This link does not work" in page.text
    assert client.post("/unsubscribe", data={"token": bad}).status_code == 400
    one_click = client.post(f"/unsubscribe?token={bad}", content=ONE_CLICK.encode())
    assert one_click.status_code == 400
    assert client.get("/manage", params={"token": bad}).status_code == 400
    assert snapshot(engine) == before


def test_tampered_and_truncated_tokens(client: TestClient, ana: str) -> None:
    engine = engine_of(client)
    before = snapshot(engine)
    body, mac = ana.split(".")
    forged = sign("u:1:" + ISSUE, "another-secret-of-some-length")
    for bad in (ana[:-1], ana[:10], f"{body}.{mac[:-2]}", f"{body}x.{mac}", forged):
        assert client.post("/unsubscribe", data={"token": bad}).status_code == 400
        assert client.post(f"/unsubscribe?token={bad}", content=ONE_CLICK).status_code == 400
    assert snapshot(engine) == before


def test_an_unknown_subscriber_is_a_404_page(client: TestClient) -> None:
    token = unsubscribe_token(999, ISSUE, SECRET)
    page = client.get("/unsubscribe", params={"token": token})
    assert page.status_code == 404 and "could not find" in page.text
    assert client.post("/unsubscribe", data={"token": token}).status_code == 404
    assert client.post(f"/unsubscribe?token={token}", content=ONE_CLICK).status_code == 404
    assert client.get("/manage", params={"token": token}).status_code == 404
    assert snapshot(engine_of(client)) == []


def test_an_erased_subscriber_stays_erased(client: TestClient, ana: str) -> None:
    remove_subscriber(engine_of(client), "ana@example.org", erase=True)
    assert client.post(f"/unsubscribe?token={ana}", content=ONE_CLICK).status_code == 404
    assert state_of(engine_of(client), "ana@example.org") is None


def test_a_flood_of_bad_tokens_gets_429(client: TestClient, ana: str) -> None:
    codes = [
        client.post("/unsubscribe?token=nope", content=ONE_CLICK).status_code for _ in range(30)
    ]
    assert codes[0] == 400 and codes[-1] == 429
    # a genuine one-click is never held back
    assert client.post(f"/unsubscribe?token={ana}", content=ONE_CLICK).status_code == 200


def test_a_malformed_form_is_400(client: TestClient, ana: str) -> None:
    answer = client.post(
        "/unsubscribe",
        content=b"token=%FF%FF",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400
    assert status(client) == "active"


def test_the_manage_page_changes_name_and_public_topics_only(client: TestClient, ana: str) -> None:
    page = client.get("/manage", params={"token": ana})
    assert page.status_code == 200
    assert 'value="Ana"' in page.text
    assert 'value="events" checked' in page.text and 'value="planning">' in page.text
    assert "staff" not in page.text  # the editors' tag is not the subscriber's to see
    saved = client.post("/manage", data={"token": ana, "name": "Ana <Lima>", "topic": ["planning"]})
    assert saved.status_code == 200 and "Saved" in saved.text
    assert "Ana &lt;Lima&gt;" in saved.text
    assert state_of(engine_of(client), "ana@example.org") == {
        "id": 1, "status": "active", "name": "Ana <Lima>", "tags": ["planning", "staff"]
    }  # fmt: skip


def test_manage_refuses_a_topic_it_never_offered(client: TestClient, ana: str) -> None:
    engine = engine_of(client)
    before = snapshot(engine)
    answer = client.post("/manage", data={"token": ana, "name": "X", "topic": ["staff"]})
    assert answer.status_code == 400
    assert snapshot(engine) == before


def test_leaving_cancels_confirmation_links_not_yet_used(
    client: TestClient, public_settings: Settings, ana: str
) -> None:
    client.post("/unsubscribe", data={"token": ana})
    client.post("/resubscribe", data={"token": ana})  # the goodbye page's button
    assert wait_for(lambda: len(outbox_messages(public_settings, "confirmations")) == 1)
    confirm = token_of(link_in(outbox_messages(public_settings, "confirmations")[0], "/confirm"))
    client.post("/unsubscribe", data={"token": ana})  # changed her mind again
    assert status(client) == "unsubscribed"
    assert client.post("/confirm", data={"token": confirm}).status_code == 404
    assert status(client) == "unsubscribed"
    # and the mailer does not send a confirmation asked for before she left
    with engine_of(client).begin() as conn:
        conn.execute(update(confirmations).values(sent_at=None, next_attempt_at=stamp_past))
    public = client.app.state.public  # type: ignore[attr-defined]
    assert public.mailer.send_due() == 0
    assert len(outbox_messages(public_settings, "confirmations")) == 1
