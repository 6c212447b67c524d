"""An address a webhook suppresses while a send is running is not sent after that moment.

A slow, paced send to the fake Postmark on 127.0.0.1, the app `serve` runs (create_app)
on a real uvicorn server on 127.0.0.1, and a signed bounce and a complaint arriving
mid-send: counted at the fake server, nothing reaches those addresses after the
webhook's 200. The guarantee is the ledger's: a claim skips a subscriber who is no
longer active (delivery/ledger.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from webhook_samples.signing import BASIC, SendGridKeys, basic_header, sample

from newsletter.audience.importing import import_csv
from newsletter.config import ProviderSettings, SendingSettings, Settings
from newsletter.delivery.engine import send_issue
from newsletter.delivery.status import ledger_status
from newsletter.storage import open_engine
from newsletter.web.app import create_app

from conftest import EXAMPLE
from fake_provider import KEYS, FakeProvider

SECRET = "a-test-signing-secret-0123456789"


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """The app on uvicorn on 127.0.0.1 at a free port, in a thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def wait_until(check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)
    assert check(), "timed out"  # type: ignore[operator]


def test_a_webhook_mid_send_stops_the_sends_to_that_address(
    settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    readers = [f"reader{n}@example.org" for n in range(40)]
    csv = tmp_path / "list.csv"
    csv.write_text("email\n" + "\n".join(readers) + "\n")
    engine = open_engine(settings)
    import_csv(engine, csv)
    engine.dispose()
    bounced, complained = readers[25], readers[32]  # far enough ahead of the webhook
    settings = dataclasses.replace(
        settings,
        provider=ProviderSettings(name="postmark", base_url=fake.url, timeout=5, retry_delay=0.01),
        sending=SendingSettings(rate=20, concurrency=1, batch_size=1),
    )
    env = {
        "NEWSLETTER_SECRET_KEY": SECRET,
        "POSTMARK_SERVER_TOKEN": KEYS["postmark"],
        "NEWSLETTER_WEBHOOK_AUTH": ":".join(BASIC),
        "SENDGRID_WEBHOOK_VERIFICATION_KEY": SendGridKeys().public,
    }
    fake.delay = 0.02
    reports: list[object] = []
    sender = threading.Thread(
        target=lambda: reports.append(send_issue(settings, issue_dir, environ=env)), daemon=True
    )
    with serving(create_app(settings, env)) as url, httpx.Client(base_url=url) as client:
        sender.start()
        wait_until(lambda: len(fake.recipients()) >= 5)
        answers = {}
        for address, name in ((bounced, "bounce"), (complained, "spam-complaint")):
            event = sample("postmark", name) | {"Email": address, "Metadata": {"issue": EXAMPLE}}
            answer = client.post(
                "/webhooks/postmark", content=json.dumps(event), headers=basic_header()
            )
            assert answer.status_code == 200, answer.text
            answers[address] = len(fake.recipients())  # sent before the 200 came back
        sender.join(60)
    assert not sender.is_alive() and reports
    received = fake.recipients()
    for address, before in answers.items():
        assert before < 20, "the send ran past the address before the webhook: too fast"
        assert address not in received[before:]  # nothing after the webhook's 200
        assert address not in received  # (and it was too far ahead to go before)
    # A claim whose whole batch left the list comes back empty, and the engine (as of this
    # writing) takes that for "nothing claimable" and stops early, saying to run it again:
    # the rest are still pending, so a second run sends them, once each.
    # (once per such batch).
    runs = 1
    while not send_issue(settings, issue_dir, environ=env).finished and runs < 4:
        runs += 1
    received = fake.recipients()
    assert sorted(received) == sorted(set(readers) - {bounced, complained})
    engine = open_engine(settings)
    status = ledger_status(engine, EXAMPLE, 600)
    engine.dispose()
    assert status.counts["skipped"] == 2 and status.counts["sent"] == 38
