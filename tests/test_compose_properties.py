"""Property tests for the article readers, the front matter, dates and the URL policy.

Whatever an article file holds, reading it ends in an Article or a ContentError (one line
per problem, naming the file), never another exception; what it renders to holds no raw
control character; and no URL outside the policy survives.
"""

from __future__ import annotations

import datetime as dt
import shutil
import unicodedata
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from newsletter.compose.articles import Article, read_article
from newsletter.compose.dates import parse_date, parse_given_date
from newsletter.compose.issue import Issue
from newsletter.compose.links import IMAGE_SCHEMES, LINK_SCHEMES, checked_url
from newsletter.compose.markup import html_to_text, markdown_to_html
from newsletter.compose.render import render
from newsletter.config import Settings, load_settings
from newsletter.errors import ContentError

from conftest import REPO

PROPERTIES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text without lone surrogates, which no file can hold.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
PIECES = st.sampled_from(
    [
        "<h1>", "</h1>", "<p>", "</p>", "<article>", "<title>T</title>", "<!-- c -->", "<!--",
        '<?xml version="1.0" encoding="utf-8"?>', "<html>", "<body>", "<br>", "&#27;", "&#0;",
        "&#x85;", '<a href="javascript:alert(1)">', '<img src="data:x">', "</a>", "<script>",
        '<link rel="canonical" href="java\tscript:x">', '<meta property="og:image" content="',
        '<meta property="og:url" content="/x">', '<time datetime="2026-13-40">', "\x1b[31m",
        "\x00", "\x0b", "\x85", "\u2028", "x-newsletter:email", "---\n", "title: ", "# ",
        "\n\n", "20 Oct 17", "[l](javascript:x)", "![i](data:image/png;base64,AA)", "|a|b|\n",
        "<table><tr><td>", "\ufeff", "\r\n", "`code`", "> quote", "1. item", "- item",
    ]
)  # fmt: skip
MARKUP = st.lists(st.one_of(PIECES, TEXT), max_size=30).map("".join)
SUFFIXES = st.sampled_from([".md", ".txt", ".html"])


def _is_control(char: str) -> bool:
    return unicodedata.category(char) == "Cc" and char not in "\t\n\r"


def _check_article(article: Article) -> None:
    """What an Article may hold once read, and what it renders to."""
    for text in (article.title, article.author, article.summary, article.image_alt):
        assert text is None or not any(map(_is_control, text)), text
    assert not any(map(_is_control, article.body))
    if article.url is not None:
        assert checked_url(article.url) == article.url
    if article.image is not None:
        assert checked_url(article.image, image=True) == article.image
    html = markdown_to_html(article.body)
    text = html_to_text(html, "https://example.org/")
    assert not any(map(_is_control, html + text))


def _read(folder: Path, suffix: str, data: bytes) -> None:
    path = folder / f"article{suffix}"
    path.write_bytes(data)
    try:
        article = read_article(path, ("Did you enjoy this article?",))
    except ContentError as exc:
        assert str(exc) and str(path) in str(exc)
        return
    _check_article(article)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@PROPERTIES
@given(suffix=SUFFIXES, text=MARKUP)
def test_any_text_reads_to_an_article_or_a_content_error(
    folder: Path, suffix: str, text: str
) -> None:
    _read(folder, suffix, text.encode("utf-8"))


@PROPERTIES
@given(suffix=SUFFIXES, data=st.binary(max_size=400))
def test_any_bytes_read_to_an_article_or_a_content_error(
    folder: Path, suffix: str, data: bytes
) -> None:
    _read(folder, suffix, data)


YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT | st.dates().map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["title", "author", "date", "url", "image", "image_alt", "summary", "colour", "Title"]
)


@PROPERTIES
@given(meta=st.dictionaries(KEYS | TEXT, YAML_VALUES, max_size=8), body=MARKUP)
def test_any_front_matter_reads_to_an_article_or_a_front_matter_error(
    folder: Path, meta: dict[str, object], body: str
) -> None:
    try:
        block = yaml.safe_dump(meta, allow_unicode=True)
    except yaml.YAMLError:
        assume(False)
    _read(folder, ".md", f"---\n{block}---\n{body}".encode())


@PROPERTIES
@given(lines=st.lists(st.one_of(PIECES, TEXT, KEYS.map(lambda k: k + ": ")), max_size=12))
def test_any_yaml_ish_block_reads_to_an_article_or_a_front_matter_error(
    folder: Path, lines: list[str]
) -> None:
    _read(folder, ".md", ("---\n" + "\n".join(lines) + "\n---\nBody.\n").encode())


@PROPERTIES
@given(value=st.one_of(TEXT, st.dates(), st.datetimes(), st.integers(), st.none()))
def test_parse_date_gives_a_date_or_a_value_error(value: object) -> None:
    try:
        assert isinstance(parse_date(value), dt.date)
    except ValueError as exc:
        assert str(exc)


@PROPERTIES
@given(text=TEXT | st.dates().map(lambda d: f"{d.day} {d:%B} {d.year}"))
def test_parse_given_date_gives_a_date_or_a_value_error(text: str) -> None:
    try:
        assert isinstance(parse_given_date(text), dt.date)
    except ValueError as exc:
        assert str(exc)


@PROPERTIES
@given(
    text=st.one_of(
        TEXT, PIECES, st.sampled_from(["JAVASCRIPT:x", " data:x", "\tjavascript:x"])
    ).flatmap(lambda t: st.sampled_from([t, "java\nscript:" + t, "https://e.org/" + t])),
    image=st.booleans(),
)
def test_the_url_policy_lets_through_only_its_schemes(text: str, image: bool) -> None:
    try:
        url = checked_url(text, image=image)
    except ValueError:
        return
    scheme, colon, _ = url.partition(":")
    allowed = IMAGE_SCHEMES if image else LINK_SCHEMES
    if colon and scheme.isalnum() and "/" not in scheme:
        assert scheme.lower() in allowed, url
    assert not any(map(_is_control, url)) and "\n" not in url


@pytest.fixture(scope="module")
def workspace_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("ws")
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    return load_settings(root, environ={})


@settings(max_examples=60, deadline=None)
@given(suffix=SUFFIXES, text=MARKUP, subject=TEXT)
def test_rendered_issue_holds_no_control_character(
    folder: Path, workspace_settings: Settings, suffix: str, text: str, subject: str
) -> None:
    path = folder / f"render{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        article = read_article(path)
    except ContentError:
        return
    issue = Issue(
        folder=folder,
        subject=subject.strip() or "S",
        date=dt.date(2026, 1, 1),
        articles=(article,),
        intro=text,
    )
    rendered = render(issue, workspace_settings)
    assert not any(map(_is_control, rendered.html + rendered.text))
