"""/subscribe and /confirm: double opt-in through the app, with the database asserted."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
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
from newsletter.config import Settings, load_settings
from newsletter.delivery.tokens import confirm_token, sign
from newsletter.storage import confirmations, subscribers
from newsletter.web.app import create_app

TOPICS = {"NEWSLETTER_TOPICS": "events|planning"}


@pytest.fixture
def public_settings(workspace: Path) -> Settings:
    return load_settings(workspace, environ=TOPICS)


@pytest.fixture
def client(public_settings: Settings) -> Iterator[TestClient]:
    app = create_app(public_settings, ENVIRON)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def confirmation_emails(settings: Settings) -> int:
    return len(outbox_messages(settings, "confirmations"))


def test_the_confirmation_text_part_is_not_html_escaped(
    client: TestClient, public_settings: Settings
) -> None:
    answer = client.post("/subscribe", data={"email": "ob@example.org", "name": "Seán O'Brien"})
    assert answer.status_code == 200
    assert wait_for(lambda: confirmation_emails(public_settings) == 1)
    message = outbox_messages(public_settings, "confirmations")[0]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Seán O'Brien" in text and "&#39;" not in text and "&amp;" not in text
    assert "O&#39;Brien" in html or "O&#x27;Brien" in html  # the HTML part stays escaped


def test_the_form_shows_the_public_topics_and_a_honeypot(
    client: TestClient, public_settings: Settings
) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert f'lang="{public_settings.language}"' in page.text
    assert 'name="email"' in page.text and 'name="name"' in page.text
    assert 'value="events"' in page.text and 'value="planning"' in page.text
    assert 'name="website"' in page.text and 'tabindex="-1"' in page.text
    assert "<script" not in page.text


def test_subscribe_then_confirm_makes_an_active_subscriber(
    client: TestClient, public_settings: Settings
) -> None:
    engine = engine_of(client)
    answer = client.post(
        "/subscribe", data={"email": "Ana@Example.org", "name": "Ana Lima", "topic": ["events"]}
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert state_of(engine, "ana@example.org") == {
        "id": 1, "status": "pending", "name": "Ana Lima", "tags": ["events"]
    }  # fmt: skip
    assert wait_for(lambda: confirmation_emails(public_settings) == 1)
    message = outbox_messages(public_settings, "confirmations")[0]
    assert message["To"].addresses[0].addr_spec == "Ana@example.org"
    assert public_settings.name in message["Subject"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None  # not a message of the list
    link = link_in(message, "/confirm")
    assert link.startswith("https://millbrook.example.org/confirm?token=")
    token = token_of(link)

    shown = client.get("/confirm", params={"token": token})  # what a link scanner does
    assert shown.status_code == 200 and 'name="token"' in shown.text
    assert state_of(engine, "ana@example.org")["status"] == "pending"  # type: ignore[index]

    done = client.post("/confirm", data={"token": token})
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert state_of(engine, "ana@example.org")["status"] == "active"  # type: ignore[index]
    again = client.post("/confirm", data={"token": token})  # pressed twice
    assert again.status_code == 200 and "You are subscribed" in again.text


def test_the_answer_never_says_who_is_on_the_list(
    client: TestClient, public_settings: Settings
) -> None:
    engine = engine_of(client)
    add_subscriber(engine, "active@example.org")
    add_subscriber(engine, "bounced@example.org")
    add_subscriber(engine, "erased@example.org")
    with engine.begin() as conn:
        conn.execute(
            update(subscribers)
            .where(subscribers.c.email_key == "bounced@example.org")
            .values(status="bounced")
        )
    remove_subscriber(engine, "erased@example.org", erase=True)
    known = ("active@example.org", "bounced@example.org", "erased@example.org")
    before = [state_of(engine, a) for a in known]
    answers = {
        address: client.post("/subscribe", data={"email": address})
        for address in ("active@example.org", "bounced@example.org", "erased@example.org")
    }
    new = client.post("/subscribe", data={"email": "new@example.org"})
    for answer in answers.values():
        assert (answer.status_code, answer.text) == (new.status_code, new.text)
    assert wait_for(lambda: confirmation_emails(public_settings) == 1)
    (only,) = outbox_messages(public_settings, "confirmations")
    assert only["To"].addresses[0].addr_spec == "new@example.org"  # no one else got mail
    assert [state_of(engine, a) for a in known] == before
    assert before[2] is None  # erased stays erased


def test_a_pending_address_asking_again_soon_gets_no_second_email(
    client: TestClient, public_settings: Settings
) -> None:
    client.post("/subscribe", data={"email": "ana@example.org"})
    assert wait_for(lambda: confirmation_emails(public_settings) == 1)
    again = client.post("/subscribe", data={"email": "ana@example.org"})
    assert again.status_code == 200 and "Check your inbox" in again.text
    wait_for(lambda: confirmation_emails(public_settings) > 1, timeout=0.5)
    assert confirmation_emails(public_settings) == 1


def test_the_honeypot_gets_the_same_answer_and_changes_nothing(client: TestClient) -> None:
    engine = engine_of(client)
    trapped = client.post("/subscribe", data={"email": "bot@example.org", "website": "x"})
    assert trapped.status_code == 200 and "Check your inbox" in trapped.text
    assert snapshot(engine) == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"email=not-an-address", "application/x-www-form-urlencoded"),
        (b"email=", "application/x-www-form-urlencoded"),
        (b"email=ana%40example.org&topic=secret-staff-tag", "application/x-www-form-urlencoded"),
        (b"email=ana%40example.org&email=bo%40example.org", "application/x-www-form-urlencoded"),
        (b"email=%FF%FE", "application/x-www-form-urlencoded"),
        (b"\xff\xfeemail", "application/x-www-form-urlencoded"),
        (b'{"email": "ana@example.org"}', "application/json"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
    ],
)
def test_bad_form_data_is_a_readable_400_and_changes_nothing(
    client: TestClient, body: bytes, content_type: str
) -> None:
    engine = engine_of(client)
    answer = client.post("/subscribe", content=body, headers={"content-type": content_type})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>" in answer.text
    assert snapshot(engine) == []


def test_a_bad_address_shows_the_form_again_with_what_was_typed(client: TestClient) -> None:
    answer = client.post("/subscribe", data={"email": "ana@", "name": "<b>Ana</b>"})
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in answer.text
    assert "&lt;b&gt;Ana&lt;/b&gt;" in answer.text and "<b>Ana" not in answer.text


def test_an_oversized_body_is_refused_with_413(client: TestClient) -> None:
    engine = engine_of(client)
    answer = client.post("/subscribe", data={"email": "ana@example.org", "name": "x" * 20_000})
    assert answer.status_code == 413
    assert "too much" in answer.text
    assert snapshot(engine) == []


def test_a_flood_from_one_client_gets_429(client: TestClient) -> None:
    statuses = [
        client.post("/subscribe", data={"email": f"n{i}@example.org"}).status_code
        for i in range(12)
    ]
    assert statuses[:5] == [200] * 5
    assert statuses[-1] == 429
    refused = client.post("/subscribe", data={"email": "late@example.org"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "Too many requests" in refused.text
    assert state_of(engine_of(client), "late@example.org") is None


def test_wrong_methods_are_405(client: TestClient) -> None:
    for path in ("/subscribe", "/confirm", "/unsubscribe", "/manage"):
        assert client.put(path).status_code == 405
    assert client.get("/resubscribe").status_code == 405


def test_tampered_truncated_and_expired_confirm_links(client: TestClient) -> None:
    engine = engine_of(client)
    client.post("/subscribe", data={"email": "ana@example.org"})
    with engine.connect() as conn:
        request_id, expires = conn.execute(
            select(confirmations.c.id, confirmations.c.expires_at)
        ).one()
    good = confirm_token(request_id, int(expires.replace(tzinfo=dt.UTC).timestamp()), SECRET)
    body, mac = good.split(".")
    expired = confirm_token(request_id, 1_000_000, SECRET)
    other_kind = sign(f"u:{request_id}:x", SECRET)
    before = snapshot(engine)
    for token, status in [
        (good[:-3], 400),
        (f"{body}.{mac[::-1]}", 400),
        (other_kind, 400),
        ("", 400),
        ("x" * 5000, 400),
        (expired, 410),
        (confirm_token(999, 2_000_000_000, SECRET), 404),
    ]:
        assert client.post("/confirm", data={"token": token}).status_code == status, token
        page = client.get("/confirm", params={"token": token})
        assert page.status_code == (status if status != 404 else 200)
        assert "<h1>" in page.text
    assert snapshot(engine) == before


def test_a_confirmation_accepted_while_the_provider_is_down_is_sent_on_the_next_start(
    public_settings: Settings,
) -> None:
    # Postmark without its key: every send fails before any request is made.
    down = dataclasses.replace(
        public_settings, provider=dataclasses.replace(public_settings.provider, name="postmark")
    )
    with TestClient(create_app(down, ENVIRON)) as client:
        answer = client.post("/subscribe", data={"email": "ana@example.org"})
        assert answer.status_code == 200
        engine = engine_of(client)

        def failed_once() -> bool:
            with engine.connect() as conn:
                row = conn.execute(select(confirmations)).one()
            return row.attempts == 1 and row.next_attempt_at is not None and bool(row.error)

        assert wait_for(failed_once)
        with engine.begin() as conn:  # a minute passes
            conn.execute(update(confirmations).values(next_attempt_at=dt.datetime(2000, 1, 1)))
    assert confirmation_emails(public_settings) == 0
    with TestClient(create_app(public_settings, ENVIRON)) as client:  # outbox again
        assert wait_for(lambda: confirmation_emails(public_settings) == 1)
        with engine_of(client).connect() as conn:
            row = conn.execute(select(confirmations)).one()
        assert row.sent_at is not None and row.next_attempt_at is None


def test_an_unsubscribed_reader_comes_back_only_through_confirmation(
    client: TestClient, public_settings: Settings
) -> None:
    engine = engine_of(client)
    add_subscriber(engine, "ana@example.org", tags=["events", "staff"])
    remove_subscriber(engine, "ana@example.org")
    client.post("/subscribe", data={"email": "ana@example.org", "topic": ["planning"]})
    assert wait_for(lambda: confirmation_emails(public_settings) == 1)
    assert state_of(engine, "ana@example.org")["status"] == "unsubscribed"  # type: ignore[index]
    token = token_of(link_in(outbox_messages(public_settings, "confirmations")[0], "/confirm"))
    client.post("/confirm", data={"token": token})
    # Active again, with the topics chosen now; the editors' own tag is kept.
    assert state_of(engine, "ana@example.org") == {
        "id": 1, "status": "active", "name": "", "tags": ["planning", "staff"]
    }  # fmt: skip


def bare_engine(client: TestClient) -> Engine:
    return engine_of(client)
