"""Delivery: the built issue to every subscriber exactly once, through a provider's API.

    plan ─▶ ledger snapshot ─▶ claim a batch ─▶ address each row ─▶ provider ─▶ record
                                    ▲              (addressing)        (providers/)   │
                                    └──────────── paced (pacing), resumable ◀─────────┘

Modules, in the order a send uses them: `plan` (what a send would do, checked before it
starts), `senders` (each send registered in the database; who is alive), `ledger` (one
row per recipient: snapshot, claim, answer), `recovery` (what becomes of rows a dead or
interrupted send left, and of uncertain and refused rows on request), `addressing` and
`tokens` (each recipient's message and signed link), `pacing` (token bucket, retry
policy), `connect` and `providers/` (one adapter file per provider), `engine` (the run
loop), `report` and `status` (what a send tells and what the ledger holds), `dry_run`,
and `test_copies` (the "[TEST] " copies editors send themselves, never in the ledger).

How a message travels. The build rendered and inlined the issue once; its HTML and text
still hold a placeholder token for each per-recipient field (`x-newsletter:` with the
build's nonce, which no article can know, and the field: name, email, unsubscribe_url),
and `Rendered.html_parts` / `text_parts` hold the two bodies split at those tokens once,
literal text at the even indexes and field names at the odd ones. For each claimed row
the engine asks `addressing.Addresser` for a `compose.message.Message`: it signs an
unsubscribe token, and builds the headers (Message-ID, List-ID, the RFC 8058 pair); the
body is not made yet. A provider then takes the cheapest road to the wire: the outbox
joins the parts with the recipient's values (`compose.personalize.fill`, HTML-escaped in
the HTML, raw in the text) and writes MIME; Postmark and Resend *splice* their JSON
request, escaping the issue's parts once per issue and each recipient's values once per
message (`providers/_splice.py`), so a 50 KB body is never re-encoded per recipient;
SendGrid and Mailgun send one body per request with their own merge tags in place of our
tokens and each recipient's values beside it (`providers/_merge.py`), and the provider
fills them in.
"""
