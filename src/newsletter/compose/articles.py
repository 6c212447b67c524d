"""Articles: read each source format into one model, and write it back as Markdown.

One reader per format, chosen by the file's extension:

- Markdown with YAML front matter (the format articles are kept in);
- plain text in the shape organisations' websites give it out: a title line, a date line,
  a standfirst, then paragraphs, often ending in a widget line such as "Did you enjoy this
  article?";
- an HTML fragment or page, sanitized to a safe subset and turned into Markdown.

Every problem found in a file is reported at once, each naming the file and line or key.
The front matter, dates and URLs have modules of their own (front_matter, dates, links).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from lxml import etree
from lxml import html as lxml_html

from newsletter.compose.dates import LOOKS_LIKE_DATE, parse_date
from newsletter.compose.front_matter import (
    FRONT_MATTER_KEYS,
    check_front_matter,
    split_front_matter,
)
from newsletter.compose.images import LocalImage, find_images
from newsletter.compose.links import checked_url
from newsletter.compose.markup import escape_markdown, html_to_markdown, sanitize
from newsletter.config_checks import CONTROL_CHARACTERS, LINE_BREAKS
from newsletter.errors import ContentError, FrontMatterError

MARKDOWN_SUFFIXES = (".md", ".markdown")
TEXT_SUFFIXES = (".txt",)
HTML_SUFFIXES = (".html", ".htm")
ARTICLE_SUFFIXES = MARKDOWN_SUFFIXES + TEXT_SUFFIXES + HTML_SUFFIXES


@dataclass(frozen=True)
class Article:
    """One article as the rest of the pipeline sees it; `body` is Markdown."""

    source: Path
    title: str
    body: str
    author: str | None = None
    date: dt.date | None = None
    url: str | None = None
    image: str | None = None
    image_alt: str | None = None
    summary: str | None = None
    # What the reader cleaned or left out, one line each naming the file.
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # SHA-256 of the file's bytes: part of what a build records it was made from.
    digest: str = field(default="", compare=False)
    # The image files beside the article that it shows (compose.images).
    images: tuple[LocalImage, ...] = field(default=(), compare=False)


def read_article(path: Path, drop_lines: Iterable[str] = ()) -> Article:
    """Read an article file in any supported format.

    Control characters (ESC, BEL, ... anything but tab and line breaks) that text pasted
    from the web carries are dropped with a warning: they would reach the email unseen.
    """
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ContentError(
            f"{path}: unsupported article type '{path.suffix}' "
            f"(use one of {', '.join(ARTICLE_SUFFIXES)})"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ContentError(f"{path}: article file not found") from exc
    except IsADirectoryError as exc:
        raise ContentError(f"{path}: is a folder, not an article file") from exc
    except OSError as exc:
        raise ContentError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    text, warnings = article_text(path, raw)
    article = reader(path, text, tuple(drop_lines))
    body = without_controls(article.body)
    images, problems = find_images(path, text, article.image, body)
    if problems:
        raise ContentError("\n".join(problems))
    return replace(
        article,
        body=body,
        warnings=warnings + article.warnings,
        digest=hashlib.sha256(raw).hexdigest(),
        images=images,
    )


def article_text(path: Path, raw: bytes) -> tuple[str, tuple[str, ...]]:
    """The file's text with Unix line ends and no control characters, and a warning if any."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContentError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    found = CONTROL_CHARACTERS.search(text)
    if not found:
        return text, ()
    codes = sorted({f"U+{ord(c):04X}" for c in CONTROL_CHARACTERS.findall(text)})
    line = text.count("\n", 0, found.start()) + 1
    warning = (
        f"{path}:{line}: removed control characters ({', '.join(codes[:5])}"
        f"{', ...' if len(codes) > 5 else ''}) that would not show in the email"
    )
    return without_controls(text), (warning,)


# Vertical tab, form feed, the separators and NEL end a line; other controls are dropped.
_CONTROL_LINE_ENDS = str.maketrans(dict.fromkeys("\v\f\x1c\x1d\x1e\x85", "\n"))


def without_controls(text: str) -> str:
    if not CONTROL_CHARACTERS.search(text):
        return text
    return CONTROL_CHARACTERS.sub("", text.translate(_CONTROL_LINE_ENDS))


# --- Markdown with front matter ------------------------------------------------------------


def read_markdown(path: Path, text: str, drop_lines: tuple[str, ...] = ()) -> Article:
    meta, meta_lines, body = split_front_matter(path, text)
    fields, problems = check_front_matter(path, meta, meta_lines, clean_text)
    if "title" not in fields and meta.get("title") is None:  # absent or left empty
        heading, rest = _leading_heading(body)
        if heading:
            fields["title"], body = heading, rest
        else:
            problems.append(
                f"{path}:1: article has no title "
                "(add 'title:' to the front matter or start with '# Title')"
            )
    if fields.get("image") and "image_alt" not in fields:
        problems.append(
            f"{path}:{meta_lines.get('image', 1)}: 'image' needs 'image_alt' describing it "
            '(image_alt: "" marks it decorative)'
        )
    if problems:
        raise FrontMatterError("\n".join(problems))
    return Article(source=path, body=body.strip() + "\n", **fields)


def _leading_heading(body: str) -> tuple[str, str]:
    match = re.match(r"\s*#\s+(.+?)\s*#*\s*(\n|$)", body)
    if not match:
        return "", body
    return match.group(1).strip(), body[match.end() :]


# --- plain text ----------------------------------------------------------------------------

_SAYS = re.compile(
    r"[,\s]+says\s+((?:[A-Z][\w'’.-]*\s+){0,3}[A-Z][\w'’.-]*?)\.?\s*$"
)  # "..., says Jane Smith" at the end of a standfirst names the author


def clean_text(text: str) -> str:
    """Normalise spacing: no-break and odd spaces become plain ones, trailing ones go.

    Curly quotes, dashes and other punctuation are kept exactly as written.
    """
    text = without_controls(unicodedata.normalize("NFC", text))
    text = re.sub(r"[\u00a0\u2007\u202f\u2000-\u200a\u3000\t]", " ", text)
    text = text.replace("\u200b", "").replace("\ufeff", "")
    return "\n".join(re.sub(r" {2,}", " ", line).rstrip() for line in text.split("\n")).strip()


def clean_line(text: str) -> str:
    """clean_text for a field shown as one line: a title, an author, a summary, alt text.

    Each line break str.splitlines() knows (U+2028, U+2029, NEL, ...) becomes a space, so
    the front matter `add` writes always reads back: a Markdown title refuses them.
    """
    return re.sub(r" {2,}", " ", LINE_BREAKS.sub(" ", clean_text(text))).strip()


def read_text(path: Path, text: str, drop_lines: tuple[str, ...] = ()) -> Article:
    """Read a plain-text article: title, date line, standfirst, paragraphs.

    A paragraph's lines are joined with spaces, wherever str.splitlines() ends a line.
    """
    blocks = [
        " ".join(line.strip() for line in block.splitlines() if line.strip())
        for block in re.split(r"\n\s*\n", clean_text(text))
    ]
    blocks = [b for b in blocks if b]
    dropped = {_fold(line) for line in drop_lines}
    while blocks and _fold(blocks[-1]) in dropped:
        blocks.pop()
    if not blocks:
        raise ContentError(f"{path}:1: article has no title (the file is empty)")
    title, rest = blocks[0], blocks[1:]
    if len(title) > 300:
        raise ContentError(f"{path}:1: the first line should be the title, not a paragraph")
    date = None
    if rest and LOOKS_LIKE_DATE.match(rest[0]):
        try:
            date = parse_date(rest[0])
        except ValueError as exc:
            raise ContentError(f"{path}:{_line_of(text, rest[0])}: {exc}") from exc
        rest = rest[1:]
    summary = author = None
    if len(rest) > 1:
        summary, rest = rest[0], rest[1:]
        match = _SAYS.search(summary)
        if match:
            author = match.group(1).strip()
    body = "\n\n".join(escape_markdown(p) for p in rest)
    return Article(
        source=path,
        title=title,
        body=body + "\n",
        author=author,
        date=date,
        summary=summary,
    )


def _fold(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip().casefold()


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.split("\n"), start=1):
        if needle[:20] and needle[:20] in clean_text(line):
            return number
    return 1


# --- HTML ----------------------------------------------------------------------------------


def read_html(
    path: Path, text: str, drop_lines: tuple[str, ...] = (), *, label: str | None = None
) -> Article:
    """Read an HTML page or fragment; its title comes from <h1>, og:title or <title>.

    `label` names the page in messages when it came from elsewhere than `path` (a URL).
    """
    where = label or str(path)
    doc = _parse_html(where, text)
    for bad in doc.xpath("//script|//style|//noscript|//template|//nav|//header|//footer"):
        bad.drop_tree()

    def meta(*names: str, clean: Callable[[str], str] = clean_line) -> str | None:
        for name in names:
            found = doc.xpath(f'//meta[@name="{name}" or @property="{name}"]/@content')
            if found and str(found[0]).strip():
                return clean(str(found[0]))
        return None

    container = next(
        iter(doc.xpath("//article") or doc.xpath("//main") or doc.xpath("//body")), doc
    )
    heading = next(iter(container.xpath(".//h1")), None)
    title = None
    if heading is not None:
        title = clean_line(heading.text_content())
        heading.drop_tree()
    title = title or meta("og:title") or clean_line(" ".join(doc.xpath("//title/text()")))
    if not title:
        raise ContentError(f"{where}:1: article has no title (add an <h1> or a <title>)")

    date_text = meta("article:published_time", "date", "dc.date")
    if date_text is None:
        stamps = container.xpath(".//time/@datetime")
        date_text = str(stamps[0]) if stamps else None
    date = None
    if date_text:
        try:
            date = parse_date(date_text[:10] if re.match(r"\d{4}-", date_text) else date_text)
        except ValueError as exc:
            raise ContentError(f"{where}: date: {exc}") from exc

    inner = "".join(
        lxml_html.tostring(child, encoding="unicode") for child in container.iterchildren()
    )
    body = html_to_markdown(sanitize((container.text or "") + inner))
    dropped = {_fold(line) for line in drop_lines}
    paragraphs = body.strip().split("\n\n")
    while paragraphs and _fold(paragraphs[-1].replace("\\", "")) in dropped:
        paragraphs.pop()
    warnings: list[str] = []
    canonical: list[str | None] = [str(h) for h in doc.xpath('//link[@rel="canonical"]/@href')]
    links = [("canonical link", canonical[:1]), ("og:url", [meta("og:url", clean=str)])]
    url = _page_url(where, links, warnings)
    image = _page_url(where, [("og:image", [meta("og:image", clean=str)])], warnings, image=True)
    return Article(
        source=path,
        title=title,
        body="\n\n".join(paragraphs) + "\n",
        author=meta("author", "article:author"),
        date=date,
        url=url,
        image=image,
        image_alt=meta("og:image:alt") or ("" if image else None),
        summary=meta("description", "og:description"),
        warnings=tuple(warnings),
    )


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>")


def _parse_html(path: str, text: str) -> lxml_html.HtmlElement:
    """The page as a tree; one without any content is an article without a title."""
    # lxml refuses text that starts with an XML declaration naming an encoding (XHTML pages
    # do); the text is already decoded, so the declaration says nothing more.
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        raise ContentError(f"{path}:1: article has no title (the file is empty)")
    empty = ContentError(f"{path}:1: article has no title (the page has no content)")
    try:
        return lxml_html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise empty from exc


def _page_url(
    path: str,
    candidates: list[tuple[str, list[str | None]]],
    warnings: list[str],
    image: bool = False,
) -> str | None:
    """The first of a page's URLs that the URL policy allows; a warning for each it does not."""
    for where, values in candidates:
        for value in values:
            if not value:
                continue
            try:
                return checked_url(value, image=image)
            except ValueError as exc:
                warnings.append(f"{path}: left out the page's {where}: {exc}")
    return None


_READERS: dict[str, Callable[[Path, str, tuple[str, ...]], Article]] = {
    **{s: read_markdown for s in MARKDOWN_SUFFIXES},
    **{s: read_text for s in TEXT_SUFFIXES},
    **{s: read_html for s in HTML_SUFFIXES},
}


# --- writing -------------------------------------------------------------------------------


def to_markdown(article: Article) -> str:
    """Serialise an article as Markdown with YAML front matter (the format kept in git)."""
    meta: dict[str, Any] = {"title": article.title}
    for key in FRONT_MATTER_KEYS[1:]:  # title first, then the rest in their usual order
        value = getattr(article, key)
        if value is not None:
            meta[key] = value
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, width=88)
    return f"---\n{front}---\n\n{article.body.strip()}\n"


def slugify(text: str, max_length: int = 60) -> str:
    """A file-name-safe slug: ASCII letters, digits and hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "article"
