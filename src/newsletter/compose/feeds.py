"""The RSS-to-email workflow: a feed's items since a date, each as an Article.

feedparser reads RSS 0.9x to 2.0, RDF and Atom alike. Each item dated on or after `since`
becomes an article: its title, link (the article's `url`, shown as "Read more"), author,
date and image (Media RSS or an image enclosure), and as body the item's full content
when the feed carries it (content:encoded, Atom content), else its summary or description.
The Markdown is the editor's to cut, and text cut is easy to see while text never fetched
is not. An item without a date cannot be placed before or after `since` and one without a
title cannot be an article: each is left out with a warning.

Item HTML is outside input: it is read from bytes in memory (never a path or URL, which
feedparser would open), its relative URLs made absolute against the item's link, then
sanitized and held to the URL policy like any imported page.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import feedparser
from lxml import etree
from lxml import html as lxml_html

from newsletter.compose.articles import Article, clean_line, slugify, without_controls
from newsletter.compose.links import checked_url
from newsletter.compose.markup import html_to_markdown, sanitize
from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, quoted, shown

FEED_SUFFIXES = (".xml", ".rss", ".atom")
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def read_feed(
    data: bytes, where: str, since: dt.date, base_url: str = ""
) -> tuple[list[Article], list[str]]:
    """The feed's items dated `since` or later, in the feed's order, and warnings."""
    label = shown(where, PATH_LIMIT)
    try:
        parsed = feedparser.parse(
            io.BytesIO(data),
            sanitize_html=False,  # nh3 sanitizes below, to the email's own subset
        )
    except RecursionError as exc:
        raise ContentError(f"{label}: the feed is nested too deeply to read") from exc
    if not parsed.get("version"):
        raise ContentError(f"{label}: not an RSS or Atom feed{_why(parsed)}")
    feed_link = _absolute(parsed.get("feed", {}).get("link"), base_url)
    articles: list[Article] = []
    warnings: list[str] = []
    for number, entry in enumerate(parsed.get("entries", []), start=1):
        title = _title(entry)
        name = quoted(title, 60) if title else f"number {number}"
        date = _date(entry)
        if date is None:
            warnings.append(f"{label}: item {name} has no date, so it was left out")
            continue
        if date < since:
            continue
        if not title:
            warnings.append(f"{label}: item {name} has no title, so it was left out")
            continue
        articles.append(item_article(entry, title, date, feed_link or base_url, warnings, label))
    return articles, warnings


def item_article(
    entry: Mapping[str, Any],
    title: str,
    date: dt.date,
    base_url: str,
    warnings: list[str],
    label: str,
) -> Article:
    """One feed item as an article; URLs outside the policy are left out with a warning."""
    url = _policy_url(_absolute(entry.get("link"), base_url), label, "link", warnings)
    base = url or base_url
    image = _policy_url(_image(entry, base), label, "image", warnings, image=True)
    body_html = _body(entry)
    if body_html and base:
        body_html = _absolute_links(body_html, base)
    body = html_to_markdown(sanitize(without_controls(body_html))) if body_html else ""
    author = _author(entry)
    return Article(
        source=Path(slugify(title) + ".md"),
        title=title,
        body=body.strip() + "\n",
        author=author or None,
        date=date,
        url=url,
        image=image,
        image_alt="" if image else None,
    )


def _why(parsed: Mapping[str, Any]) -> str:
    problem = parsed.get("bozo_exception")
    if problem is None:
        return ""
    text = str(problem).strip().splitlines()
    return f" ({text[0][:120]})" if text else ""


def _title(entry: Mapping[str, Any]) -> str:
    value = entry.get("title") or ""
    detail = entry.get("title_detail") or {}
    if detail.get("type") in _HTML_TYPES and "<" in value:
        value = _text_of(value)
    return clean_line(value)


def _text_of(markup: str) -> str:
    try:
        return str(lxml_html.fragment_fromstring(markup, create_parent="div").text_content())
    except (etree.ParserError, ValueError):
        return re.sub(r"<[^>]*>", "", markup)


def _date(entry: Mapping[str, Any]) -> dt.date | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        stamp = entry.get(key)
        if stamp:
            try:
                return dt.date(stamp[0], stamp[1], stamp[2])
            except (ValueError, TypeError, IndexError):
                continue
    return None


def _author(entry: Mapping[str, Any]) -> str:
    detail = entry.get("author_detail") or {}
    name = detail.get("name") or entry.get("author") or ""
    return clean_line(_text_of(name) if "<" in name else name) if isinstance(name, str) else ""


def _body(entry: Mapping[str, Any]) -> str:
    """The item's content as HTML: full content first, else the summary."""
    for part in [*(entry.get("content") or []), entry.get("summary_detail") or {}]:
        value = part.get("value") if isinstance(part, Mapping) else None
        if not isinstance(value, str) or not value.strip():
            continue
        if part.get("type") in _HTML_TYPES:
            return value
        paragraphs = re.split(r"\n\s*\n", value.strip())
        return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return ""


def _image(entry: Mapping[str, Any], base: str) -> str | None:
    """Media RSS content or thumbnail, or an image enclosure."""
    candidates: list[Any] = []
    for media in entry.get("media_content") or []:
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            candidates.append(media.get("url"))
    candidates += [t.get("url") for t in entry.get("media_thumbnail") or []]
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and str(link.get("type", "")).startswith("image/"):
            candidates.append(link.get("href"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return _absolute(candidate, base)
    return None


def _absolute(value: Any, base: str) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        return urljoin(base, value.strip()) if base else value.strip()
    except ValueError:
        return value.strip()


def _policy_url(
    value: str | None, label: str, what: str, warnings: list[str], image: bool = False
) -> str | None:
    if not value:
        return None
    try:
        return checked_url(value, image=image)
    except ValueError as exc:
        warnings.append(f"{label}: left out an item's {what}: {exc}")
        return None


def _absolute_links(body_html: str, base: str) -> str:
    try:
        root = lxml_html.fragment_fromstring(body_html, create_parent="div")
        root.make_links_absolute(base, resolve_base_href=False, handle_failures="discard")
    except (etree.ParserError, ValueError):
        return body_html
    inner = "".join(lxml_html.tostring(child, encoding="unicode") for child in root)
    return html.escape(root.text or "") + inner
