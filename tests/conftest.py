from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
# A plain-text article in the shape the organisation's website gives them out (see its README).
SAMPLE_ARTICLE = REPO / "tests" / "samples" / "the-garden-on-mill-street.txt"
EXAMPLE = "2026-11-26-welcome"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's NEWSLETTER_* settings or provider keys."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of this repository's example workspace."""
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues" / EXAMPLE, root / "issues" / EXAMPLE)
    return root


@pytest.fixture
def settings(workspace: Path) -> Settings:
    return load_settings(workspace, environ={})


@pytest.fixture
def issue_dir(workspace: Path) -> Path:
    return workspace / "issues" / EXAMPLE


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite tests/golden/ from the current output (then read the diff).",
    )


@pytest.fixture(scope="session")
def fake_server() -> Iterator[object]:
    from fake_provider import running

    yield from running()


@pytest.fixture
def fake(fake_server: object) -> object:
    fake_server.reset()  # type: ignore[attr-defined]
    return fake_server


TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The workspace's settings on each database the project supports."""
    if request.param == "sqlite":
        return settings
    if not TEST_POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests")
        pytest.skip("set TEST_POSTGRES_URL=postgresql://... to run against PostgreSQL")
    from sqlalchemy import create_engine

    from newsletter.storage import engine_url

    pg = dataclasses.replace(settings, database_url=TEST_POSTGRES_URL)
    engine = create_engine(engine_url(pg))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return pg


@pytest.fixture
def engine(db_settings: Settings) -> Iterator[object]:
    from newsletter.storage import open_engine

    opened = open_engine(db_settings)
    yield opened
    opened.dispose()
