"""A dry run: personalize every message a send would make, send none, write nothing.

It shows that every recipient's message can be made and what that costs per recipient,
without touching the ledger or the provider.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from newsletter.audience.subscribers import iter_audience
from newsletter.compose.build import load_built
from newsletter.compose.fields import personal
from newsletter.config import Settings
from newsletter.delivery.addressing import Addresser
from newsletter.delivery.ledger import find_send
from newsletter.delivery.plan import nobody
from newsletter.delivery.report import SendReport
from newsletter.delivery.status import pending_rows
from newsletter.delivery.tokens import secret_key
from newsletter.storage import open_engine


def dry_run(
    settings: Settings, folder: Path, *, environ: Mapping[str, str], segment: str = ""
) -> SendReport:
    """The audience of a first send, or the rows still pending of a started one."""
    issue, rendered = load_built(settings, folder)
    provider = settings.provider.name
    addresser = Addresser(settings, issue.key, rendered, secret_key(environ, provider))
    report = SendReport(issue.key, provider, dry_run=True)
    engine = open_engine(settings)
    try:
        started = time.perf_counter()
        count = 0
        if find_send(engine, issue.key) is None:
            for s in iter_audience(engine, segment):
                addresser.message(s.id, s.email, s.name, personal(s.fields))
                count += 1
            if count == 0:
                raise nobody(segment)
        else:
            for row in pending_rows(engine, issue.key):
                addresser.message(row.subscriber_id, row.email, row.name, row.fields)
                count += 1
        elapsed = time.perf_counter() - started
    finally:
        engine.dispose()
    report.sent = count
    report.personalize_us = elapsed / count * 1e6 if count else 0.0
    return report
