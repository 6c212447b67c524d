"""A claim whose whole batch left the list claims again instead of ending the send.

ledger.claim marks rows whose subscriber is no longer active as skipped and returns
only the others; when a batch was all leavers it returns nothing, though later rows are
still pending. The engine must tell that from "nothing left to claim".
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import Engine

from newsletter.audience.importing import import_csv
from newsletter.audience.subscribers import remove_subscriber
from newsletter.config import ProviderSettings, SendingSettings, Settings
from newsletter.delivery import ledger
from newsletter.delivery.engine import send_issue
from newsletter.delivery.status import ledger_status
from newsletter.storage import open_engine

from conftest import EXAMPLE
from fake_provider import KEYS, FakeProvider

ENV = {"NEWSLETTER_SECRET_KEY": "a-test-signing-secret-0123456789"}


def populate(engine: Engine, tmp_path: Path, count: int) -> list[str]:
    addresses = [f"reader{n}@example.org" for n in range(count)]
    (tmp_path / "list.csv").write_text("email\n" + "\n".join(addresses) + "\n")
    import_csv(engine, tmp_path / "list.csv")
    return addresses


def test_whole_batches_that_left_are_skipped_and_the_send_goes_on(
    db_settings: Settings, issue_dir: Path, tmp_path: Path, fake: FakeProvider
) -> None:
    engine = open_engine(db_settings)
    try:
        readers = populate(engine, tmp_path, 40)
        settings = dataclasses.replace(
            db_settings,
            provider=ProviderSettings(
                name="postmark", base_url=fake.url, timeout=5, retry_delay=0.01
            ),
            sending=SendingSettings(rate=100000, concurrency=1, batch_size=5),
        )
        env = ENV | {"POSTMARK_SERVER_TOKEN": KEYS["postmark"]}
        stop = threading.Event()
        # The first batch goes, then the run stops: the snapshot holds all 40.
        first = send_issue(
            settings, issue_dir, environ=env, stop=stop, progress=lambda p: stop.set()
        )
        assert first.sent == 5 and not first.finished
        # The next three whole batches (and one row of a later one) leave the list.
        leavers = readers[5:20] + [readers[33]]
        for address in leavers:
            remove_subscriber(engine, address)
        report = send_issue(settings, issue_dir, environ=env)
        assert (report.sent, report.failed, report.deferred) == (19, 0, 0)
        assert report.finished and not report.stopped, report.stopped
        received = Counter(fake.recipients())
        assert set(received) == set(readers) - set(leavers) and set(received.values()) == {1}
        counts = ledger_status(engine, EXAMPLE, 600).counts
        assert (counts["sent"], counts["skipped"], counts["pending"]) == (24, 16, 0)
        assert ledger.pending_count(engine, EXAMPLE) == 0
    finally:
        engine.dispose()
