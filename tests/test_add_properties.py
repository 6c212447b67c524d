"""Property tests for the parsers of outside input that `add` uses: feeds and web pages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.compose.articles import clean_line, read_markdown, to_markdown
from newsletter.compose.feeds import read_feed
from newsletter.compose.fetch import kind_of
from newsletter.compose.webpage import read_page
from newsletter.errors import ContentError, NewsletterError

SINCE = dt.date(2026, 6, 1)
# Text a feed may carry: anything XML 1.0 allows but C1 controls, which feedparser reads
# as the Windows-1252 characters they stand for in so many feeds (\x91 is a quote).
xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff"
    ).filter(lambda c: c in "\t\n\r" or (ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F)),
    max_size=80,
)


def mended_by_feedparser(text: str) -> bool:
    """Text that reads as UTF-8 mis-decoded ("Â¡" for "¡"), which feedparser repairs."""
    for codec in ("cp1252", "latin-1"):
        try:
            if text.encode(codec).decode("utf-8") != text:
                return True
        except UnicodeError:
            continue
    return False


items = st.lists(
    st.fixed_dictionaries(
        {
            "title": xml_text.filter(lambda t: not mended_by_feedparser(t)),
            "date": st.dates(dt.date(2025, 1, 1), dt.date(2027, 12, 31)),
            "slug": st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
            "content": xml_text,
            "html": st.booleans(),
        }
    ),
    max_size=6,
)


def rss(entries: list[dict[str, object]]) -> bytes:
    parts = []
    for item in entries:
        day = item["date"]
        assert isinstance(day, dt.date)
        content = escape(str(item["content"]))
        body = (
            f"<content:encoded>{escape('<p>' + content + '</p>')}</content:encoded>"
            if item["html"]
            else f"<description>{content}</description>"
        )
        parts.append(
            f"<item><title>{escape(str(item['title']))}</title>"
            f"<link>https://news.example.org/{item['slug']}</link>"
            f"<pubDate>{day:%a, %d %b %Y} 12:00:00 GMT</pubDate>{body}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>T</title>'
        "<link>https://news.example.org/</link>" + "".join(parts) + "</channel></rss>"
    ).encode("utf-8")


@settings(max_examples=150, deadline=None)
@given(items)
def test_feed_items_since_the_date_become_articles_that_read_back(
    entries: list[dict[str, object]],
) -> None:
    articles, warnings = read_feed(rss(entries), "feed.xml", SINCE)
    expected = [
        e
        for e in entries
        if isinstance(e["date"], dt.date) and e["date"] >= SINCE and clean_line(str(e["title"]))
    ]
    assert [a.url for a in articles] == [f"https://news.example.org/{e['slug']}" for e in expected]
    for article, entry in zip(articles, expected, strict=True):
        assert article.date == entry["date"]
        assert article.title == clean_line(str(entry["title"]))
        written = to_markdown(article)
        again = read_markdown(Path("item.md"), written)  # what add writes always builds
        assert (again.title, again.date, again.url) == (article.title, article.date, article.url)
    assert all("\n" not in w for w in warnings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8")))
def test_any_bytes_are_a_feed_or_one_content_error(data: bytes) -> None:
    try:
        articles, _ = read_feed(data, "feed.xml", SINCE)
    except ContentError as exc:
        assert str(exc).startswith("feed.xml: ")
        return
    for article in articles:
        read_markdown(Path("item.md"), to_markdown(article))


tags = st.sampled_from(
    ["p", "div", "article", "main", "h1", "h2", "a", "img", "script", "table", "li", "nav", "em"]
)
fragments = st.recursive(
    st.text(max_size=30).map(escape),
    lambda inner: st.builds(
        lambda tag, attrs, children: f"<{tag}{attrs}>{''.join(children)}</{tag}>",
        tags,
        st.sampled_from(
            [
                "",
                ' href="/x"',
                ' src="a.png" alt="A"',
                ' href="javascript:alert(1)"',
                ' onclick="x"',
            ]
        ),
        st.lists(inner, max_size=4),
    ),
    max_leaves=25,
)
pages = st.one_of(
    fragments.map(lambda body: f"<html><head><title>T</title></head><body>{body}</body></html>"),
    st.text(max_size=300),
).map(lambda text: text.encode("utf-8")) | st.binary(max_size=300)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages, st.sampled_from([None, "utf-8", "latin-1", "no-such-charset"]))
def test_page_extraction_gives_an_article_or_a_newsletter_error(
    data: bytes, charset: str | None
) -> None:
    try:
        article = read_page(data, "https://news.example.org/story", charset)
    except NewsletterError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("https://news.example.org/story")
        return
    again = read_markdown(Path("page.md"), to_markdown(article))
    assert again.title == article.title
    assert "javascript:" not in article.body and "onclick" not in article.body


@given(st.text(max_size=40), st.binary(max_size=200))
def test_every_answer_is_a_page_a_feed_or_neither(media_type: str, data: bytes) -> None:
    assert kind_of(media_type.lower(), data) in ("page", "feed", "other")
