"""The app's frame: health check, security headers, body cap, error pages, archive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import TestClient

from newsletter.config import Settings
from newsletter.web.app import create_app


@pytest.fixture
def client(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "index.html").write_text("<h1>Archive</h1>", encoding="utf-8")
    (archive / "feed.xml").write_text("<feed/>", encoding="utf-8")
    app = create_app(settings, {}, archive_dir=archive)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_healthz_answers_when_the_database_does(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for response in (client.get("/healthz"), client.get("/no-such-page")):
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "set-cookie" not in response.headers


def test_an_unknown_page_is_a_readable_404(client: TestClient, settings: Settings) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Page not found" in response.text
    assert settings.name in response.text
    assert f'lang="{settings.language}"' in response.text


def test_a_wrong_method_is_a_readable_405(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert "cannot do that" in response.text


def test_the_archive_is_served_with_its_feed_as_atom(client: TestClient) -> None:
    assert "Archive" in client.get("/archive/").text
    feed = client.get("/archive/feed.xml")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")


def test_hidden_files_of_the_archive_are_not_served(settings: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / ".git").mkdir(parents=True)
    (archive / ".newsletter-archive.json").write_text('{"issues": {"unpublished": {}}}')
    (archive / ".git" / "config").write_text("[core]")
    (archive / "index.html").write_text("<h1>Archive</h1>")
    with TestClient(create_app(settings, {}, archive_dir=archive)) as client:
        assert client.get("/archive/index.html").status_code == 200
        for path in ("/archive/.newsletter-archive.json", "/archive/.git/config"):
            answer = client.get(path)
            assert answer.status_code == 404 and "unpublished" not in answer.text


def test_archive_redirects_never_take_the_host_header(settings: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    (archive / "2026-11-26-welcome").mkdir(parents=True)
    (archive / "2026-11-26-welcome" / "index.html").write_text("<h1>Issue</h1>")
    with TestClient(create_app(settings, {}, archive_dir=archive)) as client:
        for path, target in (
            ("/archive", "/archive/"),
            ("/archive/2026-11-26-welcome", "/archive/2026-11-26-welcome/"),
        ):
            answer = client.get(path, headers={"Host": "evil.test"}, follow_redirects=False)
            assert answer.status_code in (307, 308) and answer.headers["location"] == target


def test_no_archive_yet_is_a_404_page(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, {}, archive_dir=tmp_path / "none")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/archive/")
    assert response.status_code == 404
    assert "Page not found" in response.text
