"""Property tests for what the pages parse from outside: forms, one-click bodies, tokens."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import ENVIRON, SECRET, TestClient, engine_of, snapshot

from newsletter.audience.subscribers import add_subscriber
from newsletter.config import load_settings
from newsletter.delivery.tokens import (
    confirm_token,
    read_confirm_token,
    read_subscriber_token,
    unsubscribe_token,
)
from newsletter.web.app import create_app
from newsletter.web.forms import FormError, is_one_click, parse_form

field_names = st.text(min_size=1, max_size=20)
field_values = st.text(max_size=40)


@given(st.binary(max_size=300))
def test_any_body_parses_or_is_a_form_error(body: bytes) -> None:
    try:
        fields = parse_form(body)
    except FormError:
        return
    assert all(isinstance(v, str) for values in fields.values() for v in values)


@given(st.lists(st.tuples(field_names, field_values), max_size=10))
def test_what_a_browser_encodes_is_read_back(pairs: list[tuple[str, str]]) -> None:
    fields = parse_form(urlencode(pairs).encode())
    expected: dict[str, list[str]] = {}
    for name, value in pairs:
        expected.setdefault(name, []).append(value)
    assert fields == expected


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_one_click_is_found_wherever_it_sits(before: bytes, after: bytes) -> None:
    assert is_one_click(before + b"&List-Unsubscribe=One-Click&" + after)


@given(st.binary(max_size=300))
def test_is_one_click_never_raises(body: bytes) -> None:
    assert is_one_click(body) in (True, False)


@given(st.text(max_size=200))
def test_any_text_is_a_token_or_none(text: str) -> None:
    assert read_subscriber_token(text, SECRET) is None or text.count(".") == 1
    assert read_confirm_token(text, SECRET) is None or text.count(".") == 1


@given(st.integers(1, 2**40), st.integers(0, 2**34), st.integers(0, 40), st.characters())
def test_a_changed_confirm_token_never_names_another_request(
    request_id: int, expires: int, where: int, replacement: str
) -> None:
    token = confirm_token(request_id, expires, SECRET)
    where %= len(token)
    changed = token[:where] + replacement + token[where + 1 :]
    assert read_confirm_token(changed, SECRET) in (None, (request_id, expires))
    # and a confirm token is never an unsubscribe one, nor the other way round
    assert read_subscriber_token(token, SECRET) is None
    assert read_confirm_token(unsubscribe_token(request_id, "i", SECRET), SECRET) is None


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    import shutil

    from conftest import REPO

    root = tmp_path_factory.mktemp("ws")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    settings_ = load_settings(root, environ={})
    with TestClient(create_app(settings_, ENVIRON), raise_server_exceptions=False) as client:
        add_subscriber(engine_of(client), "ana@example.org")
        yield client


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/unsubscribe", "/manage", "/confirm", "/subscribe", "/resubscribe"]),
    token=st.text(max_size=80),
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""]
    ),
)
def test_no_post_of_junk_changes_anyone_or_fails_the_server(
    app_client: TestClient, path: str, token: str, body: bytes, content_type: str
) -> None:
    engine = engine_of(app_client)
    before = [r for r in snapshot(engine)]
    app_client.app.state.public.limiter.buckets.clear()  # type: ignore[attr-defined]
    answer = app_client.post(
        path,
        params={"token": token},
        content=body,
        headers={"content-type": content_type} if content_type else {},
    )
    assert answer.status_code < 500
    if path != "/subscribe":  # only /subscribe may add someone, and only with an address
        assert snapshot(engine) == before
