"""`newsletter serve`: what it refuses before listening, and a real run's access log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner
from web_support import SECRET

from newsletter.cli import app
from newsletter.web.access_log import safe_path

ONE_CLICK = b"List-Unsubscribe=One-Click"

runner = CliRunner()


def serve(workspace: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["--workspace", str(workspace), "serve", *args], env=env or {})
    return result.exit_code, result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_refuses_to_start_without_the_secret_key(workspace: Path) -> None:
    code, output = serve(workspace, "--port", str(free_port()))
    assert code == 1
    assert output.strip().splitlines() == [
        "Error: serve needs NEWSLETTER_SECRET_KEY: it checks the signed links in every "
        "email (the same key `send` signed them with)"
    ]


def test_a_short_secret_key_is_refused(workspace: Path) -> None:
    code, output = serve(workspace, env={"NEWSLETTER_SECRET_KEY": "short"})
    assert code == 1 and "too short" in output and "short\n" not in output


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::"])
def test_plain_http_beyond_loopback_needs_a_proxy(workspace: Path, host: str) -> None:
    code, output = serve(workspace, "--host", host, env={"NEWSLETTER_SECRET_KEY": SECRET})
    assert code == 1
    assert len(output.strip().splitlines()) == 1 and "--behind-proxy" in output


def test_several_workers_on_sqlite_are_refused(workspace: Path) -> None:
    code, output = serve(workspace, "--workers", "2", env={"NEWSLETTER_SECRET_KEY": SECRET})
    assert code == 1
    assert len(output.strip().splitlines()) == 1 and "SQLite" in output


def test_a_port_in_use_is_one_line(workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = serve(workspace, "--port", str(port), env={"NEWSLETTER_SECRET_KEY": SECRET})
    assert code == 1
    assert output.strip().splitlines() == [
        f"Error: port {port} on 127.0.0.1 is in use; stop what listens there or pass --port N"
    ]


class Served:
    """A real `newsletter serve` process; `output` holds its stdout and stderr once stopped."""

    def __init__(self, workspace: Path, *args: str, quiet: bool = False) -> None:
        """`quiet`: its output goes nowhere (a pipe nobody reads would fill and stop it)."""
        self.port = free_port()
        env = {
            **os.environ,
            "NEWSLETTER_SECRET_KEY": SECRET,
            "NEWSLETTER_WORKSPACE": str(workspace),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else subprocess.PIPE,
            text=True,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        self.stdout = self.stderr = ""

    def __enter__(self) -> httpx.Client:
        """Once the server answers; a busy machine may take several seconds to start it."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self.client
            except httpx.TransportError:
                time.sleep(0.05)
        self.process.kill()
        _, err = self.process.communicate()
        pytest.fail(f"newsletter serve did not start: {err or 'no answer within 60 s'}")

    def __exit__(self, *_: object) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        self.stdout, self.stderr = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, self.stderr


def test_the_access_log_holds_no_token_and_no_address(workspace: Path) -> None:
    served = Served(workspace)
    with served as client:
        assert client.get("/unsubscribe", params={"token": "SeCrEtToKeN.abc"}).status_code == 400
        assert client.get("/ana@example.org/x").status_code == 404
    stdout, stderr = served.stdout, served.stderr
    assert "SeCrEtToKeN" not in stderr + stdout and "ana@example.org" not in stderr + stdout
    assert '"GET /unsubscribe" 400' in stderr
    assert '"GET /(hidden)/x" 404' in stderr
    assert "Serving Millbrook Civic Bulletin on http://127.0.0.1:" in stdout


def test_the_archive_can_be_served_from_another_folder(workspace: Path, tmp_path: Path) -> None:
    """`archive --out DIR` writes it elsewhere; `serve --archive DIR` serves it from there."""
    elsewhere = tmp_path / "public-archive"
    elsewhere.mkdir()
    (elsewhere / "index.html").write_text("<h1>Issues from elsewhere</h1>", encoding="utf-8")
    with Served(workspace, "--archive", str(elsewhere)) as client:
        answer = client.get("/archive/")
        assert answer.status_code == 200 and "Issues from elsewhere" in answer.text


def test_an_archive_folder_that_is_not_there_is_one_line(workspace: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    code, output = serve(
        workspace, "--archive", str(missing), env={"NEWSLETTER_SECRET_KEY": SECRET}
    )
    assert code == 1
    assert output.strip().splitlines() == [
        f"Error: --archive: {missing} is not a folder; make it with `newsletter archive "
        "--out DIR`, or leave --archive out to serve build/archive"
    ]


def test_safe_path_hides_addresses_and_cuts_long_paths() -> None:
    assert safe_path("/a/b@c.d/e") == "/a/(hidden)/e"
    assert safe_path("/" + "x" * 500).endswith("...")
    assert safe_path("/unsubscribe") == "/unsubscribe"


def test_a_serve_killed_mid_load_lost_no_one_click_it_answered(workspace: Path) -> None:
    """SIGKILL in the middle of a flood of one-clicks: every request answered 200 is
    unsubscribed in the database, counted there rather than taken from the server's word
    (SQLite's commits, on the event loop or in the writer thread, come before the 200)."""
    import asyncio
    import sqlite3

    from newsletter.audience.importing import import_csv
    from newsletter.config import load_settings
    from newsletter.delivery.tokens import unsubscribe_token
    from newsletter.storage import open_engine

    listed = workspace / "list.csv"
    listed.write_text("email\n" + "".join(f"reader{n}@example.org\n" for n in range(2000)))
    engine = open_engine(load_settings(workspace, environ={}))
    import_csv(engine, listed)
    database = str(engine.url.database)
    engine.dispose()
    with sqlite3.connect(database) as conn:
        people = [i for (i,) in conn.execute("SELECT id FROM subscribers")]
    served = Served(workspace, quiet=True)
    answered: dict[int, int] = {}

    async def flood() -> None:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        url = f"http://127.0.0.1:{served.port}/unsubscribe"
        # 16 in flight; the client's own pool queue gets slow with thousands waiting.
        in_flight = asyncio.Semaphore(16)
        async with httpx.AsyncClient(timeout=10) as client:

            async def click(person: int) -> None:
                token = unsubscribe_token(person, "2026-11-26-welcome", SECRET)
                try:
                    async with in_flight:
                        answer = await client.post(
                            url, params={"token": token}, content=ONE_CLICK, headers=form
                        )
                except httpx.TransportError:
                    return  # the server was killed before it answered
                answered[person] = answer.status_code
                if len(answered) == 300:
                    served.process.kill()  # mid-load: many requests still in flight

            await asyncio.gather(*(click(p) for p in people))

    served.__enter__()  # started and answering
    try:
        asyncio.run(flood())
    finally:
        served.client.close()
        served.process.kill()
        served.process.wait(20)
    ok = {p for p, status in answered.items() if status == 200}
    assert set(answered.values()) == {200}
    assert 300 <= len(ok) < len(people)
    with sqlite3.connect(database) as conn:
        gone = {
            i
            for (i,) in conn.execute(
                "SELECT id FROM subscribers WHERE status = ?", ("unsubscribed",)
            )
        }
    assert ok <= gone  # nothing answered 200 was lost
