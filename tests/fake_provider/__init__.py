"""A fake email provider: a real HTTP server on 127.0.0.1 that speaks four providers' APIs.

It checks requests the way each provider documents them (auth, required fields, batch
limits, and the JSON bodies against the official schemas vendored in tests/schemas/) and
answers in each provider's shapes, including per-item errors. Faults can be queued to make
the next requests answer 429 with Retry-After, 500, slowly, with HTML, or by dropping the
connection mid-answer. Every message it accepts is recorded per recipient, with the
provider's own merge fields filled in, so tests count what recipients would get.

    server.py      the server, the faults, and what it records (FakeProvider)
    wire.py        what every endpoint shares: keys, records, refusals, schema checks
    postmark.py, sendgrid.py, mailgun.py, resend.py   one provider's endpoint each,
                   mirroring src/newsletter/delivery/providers/
"""

from __future__ import annotations

from fake_provider.server import FakeProvider, running
from fake_provider.wire import KEYS, MAILGUN_DOMAIN, Accepted, Seen

__all__ = ["KEYS", "MAILGUN_DOMAIN", "Accepted", "FakeProvider", "Seen", "running"]
