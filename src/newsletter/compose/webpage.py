"""An article page from the web, as an Article: trafilatura finds the article, we read it.

A page is mostly not the article: menus, cookie banners, related links, comments.
trafilatura (a kept extraction library) picks out the article's text with its links,
images and lists, and its metadata: title, author, date, lead image, description. That is
put back together as a small HTML page and read by compose.articles.read_html, so a
fetched page is sanitized (nh3), held to the URL policy and turned into Markdown exactly
as a saved .html file is. Relative links and images are made absolute against the page's
own URL: they are the site's, not files beside the article.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from urllib.parse import urljoin

import trafilatura
from lxml import etree
from lxml import html as lxml_html

from newsletter.compose.articles import Article, read_html, slugify
from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, shown

# trafilatura and the libraries under it log what they discard; a command prints one line.
for _name in ("trafilatura", "htmldate", "courlan", "justext", "charset_normalizer"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def read_page(
    data: bytes, url: str, charset: str | None = None, drop_lines: tuple[str, ...] = ()
) -> Article:
    """The article on a fetched page, or ContentError naming the URL."""
    where = shown(url, PATH_LIMIT)
    content: str | bytes = data
    if charset:
        try:
            content = data.decode(charset, errors="replace")
        except LookupError:
            content = data  # an unknown charset: let trafilatura guess
    try:
        meta = trafilatura.bare_extraction(
            content,
            url=url,
            with_metadata=True,
            include_images=True,
            include_links=True,
            include_formatting=True,
            include_comments=False,
        )
        body = trafilatura.extract(
            content,
            url=url,
            output_format="html",
            include_images=True,
            include_links=True,
            include_formatting=True,
            include_comments=False,
        )
    except RecursionError as exc:
        raise ContentError(f"{where}: the page is nested too deeply to read") from exc
    except Exception as exc:  # noqa: BLE001 - a third-party parser over outside input
        raise ContentError(f"{where}: the page could not be read ({type(exc).__name__})") from exc
    if not body or meta is None:
        raise ContentError(f"{where}: found no article text on the page")
    found = meta if isinstance(meta, dict) else meta.as_dict()
    page = _page(found, body, url)
    article = read_html(Path(_stem(found, url) + ".html"), page, drop_lines, label=where)
    return article


def _page(meta: dict[str, object], body: str, url: str) -> str:
    """The extracted article as a small page whose <head> read_html understands."""

    def text(key: str) -> str:
        value = meta.get(key)
        return value.strip() if isinstance(value, str) else ""

    head = [f"<title>{html.escape(text('title'))}</title>"]
    for name, key in (("author", "author"), ("date", "date"), ("description", "description")):
        if text(key):
            head.append(f'<meta name="{name}" content="{html.escape(text(key))}">')
    if text("image"):
        image = urljoin(url, text("image"))
        head.append(f'<meta property="og:image" content="{html.escape(image)}">')
    canonical = urljoin(url, text("url")) if text("url") else url
    head.append(f'<link rel="canonical" href="{html.escape(canonical)}">')
    return (
        "<!DOCTYPE html>\n<html><head>"
        + "".join(head)
        + "</head><body><article>"
        + _inner(body, url)
        + "</article></body></html>"
    )


def _inner(body: str, url: str) -> str:
    """What trafilatura's <body> holds, its links and images absolute against the page."""
    try:
        doc = lxml_html.document_fromstring(body)
    except (etree.ParserError, ValueError) as exc:
        raise ContentError(f"{shown(url, PATH_LIMIT)}: found no article text on the page") from exc
    doc.make_links_absolute(url, resolve_base_href=False, handle_failures="discard")
    container = doc.find("body")
    if container is None:
        container = doc
    inner = "".join(lxml_html.tostring(child, encoding="unicode") for child in container)
    return html.escape(container.text or "") + inner


def _stem(meta: dict[str, object], url: str) -> str:
    title = meta.get("title")
    return slugify(title if isinstance(title, str) and title.strip() else url)
