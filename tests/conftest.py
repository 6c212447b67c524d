from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

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


def move_site(workspace: Path, base: str) -> None:
    """The example workspace with every URL of its site moved to `base` (a loopback server)."""
    sources = [workspace / "newsletter.toml", *(workspace / "issues" / EXAMPLE).iterdir()]
    for path in (p for p in sources if p.suffix in (".toml", ".md", ".txt", ".html")):
        path.write_text(path.read_text().replace("https://millbrook.example.org", base))


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


# --- the browser tests: Debian's Chromium through Playwright -----------------------------

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "install Debian's Chromium with `apt-get install chromium`"


def browser_unavailable(reason: str) -> NoReturn:
    """CI must run the browser tests; on a developer's machine they may be skipped."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests; {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{reason}: {INSTALL_HINT} to run the browser tests")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module; never Playwright's own downloaded browsers."""
    if not CHROMIUM.is_file():
        browser_unavailable(f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # No background connections: this machine's closed network refuses them.
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
