"""Gmail's two size limits: past them a reader sees less than was sent."""

from __future__ import annotations

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule
from newsletter.compose.build import GMAIL_CLIP_BYTES

# Gmail drops every <style> block once their CSS together passes 16 KB (hteumeuleu/
# email-bugs#90; caniemail html-style note 6): phones and dark mode lose their rules.
GMAIL_STYLE_BYTES = 16_384


@rule("gmail-clip", Severity.ERROR, "the HTML passes Gmail's 102 KB clipping limit")
def gmail_clip(email: BuiltEmail) -> Found:
    data = email.html.encode("utf-8")
    if len(data) > GMAIL_CLIP_BYTES:
        # The place is the first element Gmail no longer shows.
        line = data[:GMAIL_CLIP_BYTES].count(b"\n") + 1
        cut = next(
            (e for e in email.doc.iter() if isinstance(e.tag, str) and (e.sourceline or 0) > line),
            email.doc.find("body"),
        )
        yield (
            f"the HTML is {len(data) / 1000:.1f} KB: Gmail clips it at "
            f"{GMAIL_CLIP_BYTES // 1000} KB, from here on, hiding the footer with the "
            "unsubscribe link; shorten the issue or link to the long articles",
            email.html_place(cut),
        )


@rule("style-too-big", Severity.ERROR, "<style> blocks over Gmail's 16 KB limit")
def style_too_big(email: BuiltEmail) -> Found:
    blocks = list(email.doc.iter("style"))
    size = sum(len((b.text or "").encode("utf-8")) for b in blocks)
    if size > GMAIL_STYLE_BYTES:
        yield (
            f"the <style> blocks hold {size / 1024:.1f} KB of CSS: Gmail ignores them all "
            f"past {GMAIL_STYLE_BYTES // 1024} KB (phone layout and dark mode are lost); "
            "move rules into the inlined block or drop some",
            email.html_place(blocks[-1]),
        )
