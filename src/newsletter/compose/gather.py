"""What `add` imports, read whole before anything is written: files, pages and feeds.

Each source is chosen by what it is, as Pelican picks readers, from one place:

    .md .txt .html file      compose.articles (Markdown kept as written)
    .xml .rss .atom file     a feed (compose.feeds), which needs --since
    http(s) URL              fetched (compose.fetch); an HTML page is one article
                             (compose.webpage), a feed gives its items since --since

Every source is read and checked first, each problem collected, so one bad source means
nothing is written; what is written is then the Markdown each item will be kept as.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from newsletter.compose.articles import (
    MARKDOWN_SUFFIXES,
    Article,
    article_text,
    read_article,
    slugify,
    to_markdown,
)
from newsletter.compose.feeds import FEED_SUFFIXES, read_feed
from newsletter.compose.fetch import MAX_BYTES, Fetched, fetch, is_binary, kind_of, new_client
from newsletter.compose.images import LocalImage
from newsletter.compose.links import looks_like_url
from newsletter.compose.webpage import read_page
from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, os_reason, shown


@dataclass(frozen=True)
class Incoming:
    """One article `add` will write: its source, the Markdown to write, the images to copy."""

    label: str  # the file or URL, as messages name it
    article: Article
    text: str | bytes
    stem: str  # the file name to give it, before .md and any -2
    images: tuple[LocalImage, ...] = ()


def gather(
    sources: Sequence[str | Path],
    drop_lines: tuple[str, ...],
    since: dt.date | None = None,
    client: httpx.Client | None = None,
    warnings: list[str] | None = None,
) -> list[Incoming]:
    """Read every source; ContentError listing each problem if any fails."""
    found: list[Incoming] = []
    problems: list[str] = []
    said: list[str] = []
    with _client(client, sources) as http:
        for source in sources:
            try:
                found.extend(_read_source(source, drop_lines, since, http, said))
            except ContentError as exc:
                problems.append(str(exc))
    if problems:
        raise ContentError("\n".join(problems))
    if warnings is not None:
        warnings.extend(said)
    return found


@contextmanager
def _client(
    given: httpx.Client | None, sources: Sequence[str | Path]
) -> Iterator[httpx.Client | None]:
    if given is not None or not any(_is_url(s) for s in sources):
        yield given
        return
    with new_client() as client:
        yield client


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and looks_like_url(source)


def _read_source(
    source: str | Path,
    drop_lines: tuple[str, ...],
    since: dt.date | None,
    client: httpx.Client | None,
    warnings: list[str],
) -> list[Incoming]:
    if _is_url(source):
        assert client is not None
        return _from_url(str(source), drop_lines, since, client, warnings)
    path = Path(source)
    if path.suffix.lower() in FEED_SUFFIXES:
        return _from_feed(_read_file(path), str(path), since, "", warnings)
    article = read_article(path, drop_lines)
    warnings.extend(article.warnings)
    markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    return [
        Incoming(
            label=str(path),
            article=article,
            text=_kept_markdown(path, article) if markdown else to_markdown(article),
            stem=path.stem if markdown else slugify(article.title),
            images=article.images,
        )
    ]


def _kept_markdown(path: Path, article: Article) -> str | bytes:
    """Markdown is written as it was, less the control characters its reader warned of."""
    raw = path.read_bytes()
    return article_text(path, raw)[0] if article.warnings else raw


def _from_url(
    url: str,
    drop_lines: tuple[str, ...],
    since: dt.date | None,
    client: httpx.Client,
    warnings: list[str],
) -> list[Incoming]:
    fetched = fetch(url, client)
    kind = kind_of(fetched.media_type, fetched.data)
    where = shown(url, PATH_LIMIT)
    if since is not None:
        if kind == "page":
            raise ContentError(
                f"{where}: is a web page, not an RSS or Atom feed; without --since a page "
                "is added as one article"
            )
        return _from_feed(fetched.data, url, since, fetched.url, warnings)
    if kind == "feed":
        raise ContentError(
            f"{where}: is a feed; give --since DATE to add its items dated DATE or later"
        )
    if kind != "page":
        sent = f"'{fetched.media_type}'" if fetched.media_type else "no content type"
        raise ContentError(f"{where}: is not a web page (the server sent {sent})")
    return [_page(fetched, url, drop_lines, warnings)]


def _page(fetched: Fetched, url: str, drop_lines: tuple[str, ...], warnings: list[str]) -> Incoming:
    article = read_page(fetched.data, fetched.url, fetched.charset, drop_lines)
    warnings.extend(article.warnings)
    return Incoming(
        label=url, article=article, text=to_markdown(article), stem=slugify(article.title)
    )


def _from_feed(
    data: bytes, where: str, since: dt.date | None, base_url: str, warnings: list[str]
) -> list[Incoming]:
    label = shown(where, PATH_LIMIT)
    if since is None:
        raise ContentError(
            f"{label}: is a feed; give --since DATE to add its items dated DATE or later"
        )
    if is_binary(data):
        raise ContentError(f"{label}: not an RSS or Atom feed (binary data)")
    articles, said = read_feed(data, where, since, base_url)
    warnings.extend(said)
    if not articles:
        raise ContentError(f"{label}: no items dated {since.isoformat()} or later")
    return [
        Incoming(label=where, article=a, text=to_markdown(a), stem=slugify(a.title))
        for a in articles
    ]


def _read_file(path: Path) -> bytes:
    """A feed file, held to the cap a fetched one is."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ContentError(
                f"{shown(path, PATH_LIMIT)}: is {size / 1_000_000:.0f} MB; a feed may be at "
                f"most {MAX_BYTES // 1_000_000} MB"
            )
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ContentError(f"{shown(path, PATH_LIMIT)}: feed file not found") from exc
    except IsADirectoryError as exc:
        raise ContentError(f"{shown(path, PATH_LIMIT)}: is a folder, not a feed file") from exc
    except (OSError, RuntimeError) as exc:
        raise ContentError(f"{shown(path, PATH_LIMIT)}: cannot be read ({os_reason(exc)})") from exc
