from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from newsletter.compose.build import build_issue, load_built
from newsletter.compose.inline import inline_css
from newsletter.compose.personalize import (
    TOKENS,
    Recipient,
    fill,
    filler,
    personalize,
    split_tokens,
)
from newsletter.compose.render import Rendered
from newsletter.config import Settings

from conftest import write

HTML = (
    "<html><head><style>p { color: #111111; }</style></head><body>"
    f"<p>Hi {TOKENS['name']}, this went to {TOKENS['email']}.</p>"
    f'<p><a href="{TOKENS["unsubscribe_url"]}">Unsubscribe</a> '
    '<a href="/relative">site</a></p></body></html>'
)
TEXT = f"Hi {TOKENS['name']}\nUnsubscribe: {TOKENS['unsubscribe_url']}\n"


def test_tokens_survive_premailer_and_links_become_absolute() -> None:
    inlined = inline_css(HTML, "https://example.org")
    assert f'href="{TOKENS["unsubscribe_url"]}"' in inlined
    assert 'href="https://example.org/relative"' in inlined
    assert '<p style="color:#111">' in inlined


def test_values_escaped_for_html_and_raw_in_text() -> None:
    rendered = Rendered(subject="S", html=inline_css(HTML, "https://example.org/"), text=TEXT)
    recipient = Recipient(
        email="o'brien@example.org",
        name='<b>Ann</b> & "Co"',
        unsubscribe_url="https://example.org/u?t=a&b=c",
    )
    out = personalize(rendered, recipient)
    assert "Hi &lt;b&gt;Ann&lt;/b&gt; &amp; &quot;Co&quot;," in out.html
    assert 'href="https://example.org/u?t=a&amp;b=c"' in out.html
    assert "o&#x27;brien@example.org" in out.html
    assert out.text == 'Hi <b>Ann</b> & "Co"\nUnsubscribe: https://example.org/u?t=a&b=c\n'
    assert "x-newsletter:" not in out.html + out.text


def test_line_breaks_in_values_cannot_break_out() -> None:
    rendered = Rendered(subject="S", html="<p>x-newsletter:name</p>", text="x-newsletter:name")
    out = personalize(rendered, Recipient(email="a@b.org", name="Ann\r\nBcc: x@y.org"))
    assert out.text == "Ann Bcc: x@y.org"


def test_split_once_join_per_recipient() -> None:
    parts = split_tokens("a x-newsletter:email b x-newsletter:name c")
    assert parts == ["a ", "email", " b ", "name", " c"]
    rendered = Rendered(subject="S", html="x-newsletter:email", text="")
    first = personalize(rendered, Recipient(email="one@example.org"))
    second = personalize(rendered, Recipient(email="two@example.org"))
    assert (first.html, second.html) == ("one@example.org", "two@example.org")
    assert rendered.html_parts == ["", "email", ""]  # unchanged by personalizing


# --- articles cannot place fields of their own (issue 9, C) ---------------------------------

HOSTILE_URL = "https://tracker.example.net/p.gif?who=x-newsletter:email"
HOSTILE_LINK = "https://tracker.example.net/go?u=x-newsletter:unsubscribe_url"
READERS = (
    Recipient(email="ann@example.org", name="Ann", unsubscribe_url="https://e.org/u?t=ANN"),
    Recipient(email="bob@example.org", name="Bob", unsubscribe_url="https://e.org/u?t=BOB"),
)


def _hostile_issue(issue_dir: Path) -> None:
    write(
        issue_dir / "library-reopens.md",
        "---\ntitle: Hello x-newsletter:name\nurl: " + HOSTILE_LINK + "\n---\n\n"
        f"Text x-newsletter:email here. ![pixel]({HOSTILE_URL}) "
        f"[a link]({HOSTILE_LINK})\n",
    )
    write(
        issue_dir / "flood-defences.html",
        "<h1>Page x-newsletter:name</h1>"
        f'<p>Body x-newsletter:email. <img src="{HOSTILE_URL}" alt="">'
        f' <a href="{HOSTILE_LINK}">go</a></p>',
    )
    toml = issue_dir / "issue.toml"
    text = re.sub(r'subject = ".*"', 'subject = "For x-newsletter:email"', toml.read_text())
    text = re.sub(r'preheader = ".*"', 'preheader = "Dear x-newsletter:name"', text)
    toml.write_text(text)


def test_field_tokens_in_articles_subject_and_preheader_stay_literal(
    settings: Settings, issue_dir: Path
) -> None:
    _hostile_issue(issue_dir)
    rendered = build_issue(settings, issue_dir).rendered
    for reader in READERS:
        out = personalize(rendered, reader)
        assert f'src="{HOSTILE_URL}"' in out.html
        for body in (out.html, out.text):
            assert HOSTILE_LINK in body
            assert "Text x-newsletter:email here" in body
            assert "Body x-newsletter:email." in body
            assert "Hello x-newsletter:name" in body and "Page x-newsletter:name" in body
            assert "who=" + reader.email not in body and "u=https" not in body
        assert "Dear x-newsletter:name" in out.html
        assert out.subject == "For x-newsletter:email"
        # the template's own fields are still filled, once each where it puts them
        assert out.text.count(reader.email) == 1 and reader.unsubscribe_url in out.text
        assert reader.email in out.html and reader.unsubscribe_url in out.html
        other = READERS[1] if reader is READERS[0] else READERS[0]
        assert other.email not in out.html + out.text


def test_tokens_of_a_build_survive_inlining_and_the_manifest(
    settings: Settings, issue_dir: Path
) -> None:
    _hostile_issue(issue_dir)
    built = build_issue(settings, issue_dir).rendered
    _, loaded = load_built(settings, issue_dir)
    assert loaded.html_parts == built.html_parts and loaded.text_parts == built.text_parts
    fields = loaded.html_parts[1::2]
    assert sorted(set(fields)) == ["email", "unsubscribe_url"]


@given(
    st.lists(
        st.tuples(st.text(max_size=5), st.sampled_from(["name", "email", "f.x.."])), max_size=4
    ),
    st.text(max_size=5),
)
def test_a_filler_fills_as_fill_does(pairs: list[tuple[str, str]], tail: str) -> None:
    """The filler made once per split text gives what fill gives, with no field, one
    field (itemgetter's single-key case) or many."""
    parts = [piece for pair in pairs for piece in pair] + [tail]
    values = {"name": "Ana", "email": "ana@example.org", "f.x..": "<x>"}
    assert filler(parts)(values) == fill(parts, values)
