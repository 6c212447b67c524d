from __future__ import annotations

from newsletter.compose.inline import inline_css
from newsletter.compose.personalize import TOKENS, Recipient, personalize, split_tokens
from newsletter.compose.render import Rendered

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
