"""Articles: read each source format into one model, and write it back as Markdown.

One reader per format, chosen by the file's extension:

- Markdown with YAML front matter (the format articles are kept in);
- plain text in the shape organisations' websites give it out: a title line, a date line,
  a standfirst, then paragraphs, often ending in a widget line such as "Did you enjoy this
  article?";
- an HTML fragment or page, sanitized to a safe subset and turned into Markdown.

Every problem found in a file is reported at once, each naming the file and line or key.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from lxml import html as lxml_html

from newsletter.compose.markup import escape_markdown, html_to_markdown, sanitize
from newsletter.errors import ContentError, FrontMatterError

FRONT_MATTER_KEYS = ("title", "author", "date", "url", "image", "image_alt", "summary")
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


def read_article(path: Path, drop_lines: Iterable[str] = ()) -> Article:
    """Read an article file in any supported format."""
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
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ContentError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return reader(path, text.replace("\r\n", "\n").replace("\r", "\n"), tuple(drop_lines))


# --- Markdown with front matter ------------------------------------------------------------


def read_markdown(path: Path, text: str, drop_lines: tuple[str, ...] = ()) -> Article:
    meta, meta_lines, body, body_line = _split_front_matter(path, text)
    problems: list[str] = []
    unknown = [k for k in meta if k not in FRONT_MATTER_KEYS]
    for key in unknown:
        problems.append(
            f"{path}:{meta_lines.get(key, 1)}: unknown front-matter key '{key}' "
            f"(known: {', '.join(FRONT_MATTER_KEYS)})"
        )
    fields: dict[str, Any] = {}
    for key in FRONT_MATTER_KEYS:
        if key not in meta or meta[key] is None:
            continue
        value = meta[key]
        where = f"{path}:{meta_lines.get(key, 1)}: front-matter key '{key}'"
        try:
            fields[key] = _CHECKS[key](value)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    if "title" not in fields and "title" not in meta:
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


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: parse_date checks them and names the key."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _split_front_matter(path: Path, text: str) -> tuple[dict[str, Any], dict[str, int], str, int]:
    """Return (front matter, line number of each key, body, first body line)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, {}, text, 1
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        raise FrontMatterError(f"{path}:1: front matter opened with '---' is never closed")
    block = "\n".join(lines[1:end])
    try:
        meta = yaml.load(block, Loader=_FrontMatterLoader) if block.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise FrontMatterError(f"{path}:{line}: broken front matter: {problem}") from exc
    if not isinstance(meta, dict):
        raise FrontMatterError(f"{path}:2: front matter must be 'key: value' lines")
    key_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:end], start=2):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if match:
            key_lines.setdefault(match.group(1), number)
    return {str(k): v for k, v in meta.items()}, key_lines, "\n".join(lines[end + 1 :]), end + 2


def _leading_heading(body: str) -> tuple[str, str]:
    match = re.match(r"\s*#\s+(.+?)\s*#*\s*(\n|$)", body)
    if not match:
        return "", body
    return match.group(1).strip(), body[match.end() :]


def _one_line(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"must be text, not {type(value).__name__}")
    text = clean_text(str(value))
    if "\n" in text:
        raise ValueError("must be a single line")
    if not text:
        raise ValueError("must not be empty")
    return text


def _paragraph(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    return re.sub(r"\s+", " ", clean_text(value)).strip()


def _link(value: Any) -> str:
    text = _one_line(value)
    scheme = urlsplit(text).scheme.lower()
    if scheme not in ("", "http", "https") or text.startswith("//"):
        raise ValueError(f"{text!r} must be an http(s) URL or a path on the site")
    return text


def _alt(value: Any) -> str:
    if value == "":
        return ""
    return _one_line(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "title": _one_line,
    "author": _one_line,
    "date": lambda v: parse_date(v),
    "url": _link,
    "image": _link,
    "image_alt": _alt,
    "summary": _paragraph,
}


# --- dates ---------------------------------------------------------------------------------

_DATE_FORMATS = ("%Y-%m-%d", "%d %b %y", "%d %B %Y", "%d %b %Y", "%d %B %y", "%B %d, %Y",
                 "%b %d, %Y", "%d/%m/%Y")  # fmt: skip
_LOOKS_LIKE_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}(st|nd|rd|th)? [A-Za-z]{3,9}\.?,? \d{2,4}|"
    r"[A-Za-z]{3,9}\.? \d{1,2}(st|nd|rd|th)?,? \d{4}|\d{1,2}/\d{1,2}/\d{4})$"
)


def parse_date(value: Any) -> dt.date:
    """Accept a YAML/TOML date or text such as "20 Oct 17", "20 October 2017", "2017-10-20"."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date such as 2017-10-20")
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", value.strip()).replace(".", "")
    text = re.sub(r"\s+", " ", text)
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date such as 2017-10-20 or 20 Oct 17")


# --- plain text ----------------------------------------------------------------------------

_SAYS = re.compile(
    r"[,\s]+says\s+((?:[A-Z][\w'’.-]*\s+){0,3}[A-Z][\w'’.-]*?)\.?\s*$"
)  # "..., says Jane Smith" at the end of a standfirst names the author


def clean_text(text: str) -> str:
    """Normalise spacing: no-break and odd spaces become plain ones, trailing ones go.

    Curly quotes, dashes and other punctuation are kept exactly as written.
    """
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[\u00a0\u2007\u202f\u2000-\u200a\u3000\t]", " ", text)
    text = text.replace("\u200b", "").replace("\ufeff", "")
    return "\n".join(re.sub(r" {2,}", " ", line).rstrip() for line in text.split("\n")).strip()


def read_text(path: Path, text: str, drop_lines: tuple[str, ...] = ()) -> Article:
    """Read a plain-text article: title, date line, standfirst, paragraphs."""
    blocks = [
        " ".join(line.strip() for line in block.split("\n") if line.strip())
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
    if rest and _LOOKS_LIKE_DATE.match(rest[0]):
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


def read_html(path: Path, text: str, drop_lines: tuple[str, ...] = ()) -> Article:
    """Read an HTML page or fragment; its title comes from <h1>, og:title or <title>."""
    if not text.strip():
        raise ContentError(f"{path}:1: article has no title (the file is empty)")
    doc = lxml_html.document_fromstring(text)
    for bad in doc.xpath("//script|//style|//noscript|//template|//nav|//header|//footer"):
        bad.drop_tree()

    def meta(*names: str) -> str | None:
        for name in names:
            found = doc.xpath(f'//meta[@name="{name}" or @property="{name}"]/@content')
            if found and str(found[0]).strip():
                return clean_text(str(found[0]))
        return None

    container = next(iter(doc.xpath("//article") or doc.xpath("//main") or doc.xpath("//body")))
    heading = next(iter(container.xpath(".//h1")), None)
    title = None
    if heading is not None:
        title = clean_text(heading.text_content())
        heading.drop_tree()
    title = title or meta("og:title") or clean_text(" ".join(doc.xpath("//title/text()")))
    if not title:
        raise ContentError(f"{path}:1: article has no title (add an <h1> or a <title>)")

    date_text = meta("article:published_time", "date", "dc.date")
    if date_text is None:
        stamps = container.xpath(".//time/@datetime")
        date_text = str(stamps[0]) if stamps else None
    date = None
    if date_text:
        try:
            date = parse_date(date_text[:10] if re.match(r"\d{4}-", date_text) else date_text)
        except ValueError as exc:
            raise ContentError(f"{path}: date: {exc}") from exc

    inner = "".join(
        lxml_html.tostring(child, encoding="unicode") for child in container.iterchildren()
    )
    body = html_to_markdown(sanitize((container.text or "") + inner))
    dropped = {_fold(line) for line in drop_lines}
    paragraphs = body.strip().split("\n\n")
    while paragraphs and _fold(paragraphs[-1].replace("\\", "")) in dropped:
        paragraphs.pop()
    canonical = doc.xpath('//link[@rel="canonical"]/@href')
    image = meta("og:image")
    return Article(
        source=path,
        title=title,
        body="\n\n".join(paragraphs) + "\n",
        author=meta("author", "article:author"),
        date=date,
        url=str(canonical[0]) if canonical else meta("og:url"),
        image=image,
        image_alt=meta("og:image:alt") or ("" if image else None),
        summary=meta("description", "og:description"),
    )


_READERS: dict[str, Callable[[Path, str, tuple[str, ...]], Article]] = {
    **{s: read_markdown for s in MARKDOWN_SUFFIXES},
    **{s: read_text for s in TEXT_SUFFIXES},
    **{s: read_html for s in HTML_SUFFIXES},
}


# --- writing -------------------------------------------------------------------------------


def to_markdown(article: Article) -> str:
    """Serialise an article as Markdown with YAML front matter (the format kept in git)."""
    meta: dict[str, Any] = {"title": article.title}
    for key in ("author", "date", "url", "image", "image_alt", "summary"):
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
