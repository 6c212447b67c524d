"""The send's fast road: messages of one letterhead are spliced into a pre-encoded frame,
and what goes on the wire is byte for byte what encoding each item would give."""

from __future__ import annotations

import functools
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from newsletter.compose.render import Rendered
from newsletter.config import Settings
from newsletter.delivery.addressing import Addresser
from newsletter.delivery.providers import Options
from newsletter.delivery.providers.postmark import PostmarkProvider
from newsletter.delivery.providers.postmark import build_request as postmark_request
from newsletter.delivery.providers.resend import ResendProvider
from newsletter.delivery.providers.resend import build_request as resend_request

from fake_provider.recorder import Recorder, client

REPO_WORKSPACE = Path(__file__).resolve().parents[1]
NONCE = "00112233445566778899"
T = f"x-newsletter-{NONCE}"
CITY = f"{T}:f.city.{'your “area”'.encode().hex()}."
RENDERED = Rendered(
    subject=f"For {CITY}: “news” \\ {T}:f.level..",
    html=f'<p>“Hi” {T}:name in {CITY}</p><a href="{T}:unsubscribe_url">u</a>\n\t\\',
    text=f"Hi {T}:name — {T}:email, {CITY}\n",
    nonce=NONCE,
)
NAMES = ['Ann <&> "Co"', "Zoë “quoted” \\ back", "", "tab\there", "line\u2028sep"]
FIELDS = [{"city": 'Leeds "&" <York>', "level": "gold"}, {}, {"city": "Zürich\\"}, {}, {}]


def _batch(settings: Settings) -> list:  # type: ignore[type-arg]
    addresser = Addresser(settings, "2026-11-26-welcome", RENDERED, "s" * 32)
    return [
        addresser.message(n, f"r{n}@example.org", NAMES[n], FIELDS[n]) for n in range(len(NAMES))
    ]


@pytest.mark.parametrize("provider", ["postmark", "resend"])
def test_frame_equals_plain_encoding(settings: Settings, provider: str) -> None:
    batch = _batch(settings)
    answer = (
        [{"ErrorCode": 0, "MessageID": "x"}] * len(batch)
        if provider == "postmark"
        else {"data": [{"id": "x"}] * len(batch)}
    )
    recorder = Recorder(httpx.Response(200, json=answer))
    options = Options(client(recorder), "t")
    if provider == "postmark":
        PostmarkProvider(options, message_stream="broadcast").send(batch)
        plain = orjson.dumps(postmark_request(batch, "broadcast"))
    else:
        ResendProvider(options).send(batch)
        ResendProvider(options).send(batch)  # the second batch reuses the frame
        plain = orjson.dumps(resend_request(batch, sandbox=False))
    for request in recorder.requests:
        assert request.read() == plain
    sent = orjson.loads(recorder.requests[0].read())
    subject = sent[0]["Subject" if provider == "postmark" else "subject"]
    assert subject == 'For Leeds "&" <York>: “news” \\ gold'
    assert sent[1]["Subject" if provider == "postmark" else "subject"] == (
        "For your “area”: “news” \\ "
    )


def test_the_frame_is_used_and_made_once(settings: Settings) -> None:
    from newsletter.delivery.providers._splice import Splicer
    from newsletter.delivery.providers.postmark import build_item

    batch = _batch(settings)
    splicer = Splicer()

    def item(m, n):  # type: ignore[no-untyped-def]
        return build_item(m, "broadcast", bodies=False)

    first = splicer.encode(batch, item, "HtmlBody", "TextBody")
    frame = splicer._frame
    assert frame is not None and frame.works
    assert splicer.encode(batch, item, "HtmlBody", "TextBody") == first
    assert splicer._frame is frame


@functools.cache
def _repo_settings() -> Settings:
    """The repository's own example settings, read once for all examples."""
    from newsletter.config import load_settings

    return load_settings(REPO_WORKSPACE, environ={})


@hsettings(deadline=None)
@given(
    st.text(max_size=30),
    st.dictionaries(st.sampled_from(["city", "level"]), st.text(max_size=30), max_size=2),
)
def test_any_name_and_fields_go_on_the_wire_as_encoding_each_item_gives(
    name: str, fields: dict[str, str]
) -> None:
    from newsletter.delivery.providers._splice import Splicer
    from newsletter.delivery.providers.postmark import build_item

    addresser = Addresser(_repo_settings(), "2026-11-26-welcome", RENDERED, "s" * 32)
    batch = [
        addresser.message(0, "r0@example.org", "Ann", {"city": "Leeds"}),
        addresser.message(1, "r1@example.org", name, fields),
    ]

    def item(m, n):  # type: ignore[no-untyped-def]
        return build_item(m, "broadcast", bodies=False)

    encoded = Splicer().encode(batch, item, "HtmlBody", "TextBody")
    assert encoded == orjson.dumps(postmark_request(batch, "broadcast"))
