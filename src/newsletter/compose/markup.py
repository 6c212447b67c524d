"""Conversions between the markups articles arrive in: Markdown, HTML and plain text.

Article bodies are kept as Markdown. Every HTML that reaches an email passes through
`sanitize`, so raw HTML in Markdown or an imported page cannot smuggle in scripts, styles
or event handlers; `html_to_text` gives the plain-text part its paragraphs and URLs.
"""

from __future__ import annotations

import re
import textwrap
from functools import lru_cache

import nh3
from lxml import html as lxml_html
from markdown_it import MarkdownIt
from markdownify import markdownify

from newsletter.compose.links import LINK_SCHEMES, safe_url
from newsletter.config_checks import CONTROL_CHARACTERS

# The safe subset an article body may use in email.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "del", "em",
        "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol",
        "p", "pre", "q", "s", "small", "strong", "sub", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "width", "height", "title"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
}
URL_SCHEMES = LINK_SCHEMES
TEXT_WIDTH = 72


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "typographer": False}).enable("table")


def sanitize(html: str) -> str:
    """Keep only tags and attributes that are safe and render in email clients.

    Every href and src also passes the URL policy of compose.links; an image whose src the
    policy refused goes whole (an <img> without src is a broken picture in every client).
    """
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        attribute_filter=_url_policy,
        link_rel=None,
        strip_comments=True,
    )
    return _IMAGE_WITHOUT_SOURCE.sub("", cleaned) if "<img" in cleaned else cleaned


# nh3 writes tags and attributes in one normal form, so a pattern can find these.
_IMAGE_WITHOUT_SOURCE = re.compile(r'<img(?![^>]*\ssrc=")[^>]*>')


def _url_policy(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        return safe_url(value)
    if attribute == "src":
        return safe_url(value, image=True)
    return value


def markdown_to_html(text: str) -> str:
    """Render article Markdown (tables, links, images) to sanitized HTML.

    Headings shift down one level: the email's own <h1> is the newsletter's name and each
    article's title is an <h2>, so a "# Heading" inside a body becomes <h3>. Control
    characters go, before and after: no reader sees them, and lxml refuses them; the
    sanitizer writes a reference such as &#27; in raw HTML out as the character itself.
    """
    rendered = _markdown().render(CONTROL_CHARACTERS.sub("", text))
    rendered = re.sub(
        r"<(/?)h([1-5])>", lambda m: f"<{m.group(1)}h{int(m.group(2)) + 1}>", rendered
    )
    return CONTROL_CHARACTERS.sub("", sanitize(rendered))


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&#!~])")
_MD_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])(\s|$)")


def escape_markdown(text: str) -> str:
    """Make plain text read back as itself when parsed as Markdown."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2) + m.group(3), escaped)


def html_to_markdown(html: str) -> str:
    """Convert sanitized HTML to Markdown that an editor can read and change."""
    text = markdownify(
        html,
        heading_style="ATX",
        bullets="-",
        strong_em_symbol="*",
        escape_asterisks=True,
        escape_underscores=True,
        # Text that looks like Markdown (![x](../secret.png), [a](https://elsewhere), a
        # leading #) stays text: an imported page's words must not become links or images.
        escape_misc=True,
    )
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# --- HTML to plain text ------------------------------------------------------------------

_BR = "\x00"  # a <br>, kept through whitespace folding
_BLOCKS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "li",
     "table", "figure", "figcaption", "hr", "section",
     "article"}
)  # fmt: skip


def html_to_text(html: str, base_url: str = "", width: int = TEXT_WIDTH) -> str:
    """Plain text for the text/plain part: paragraphs wrapped, links shown as absolute URLs."""
    if not html.strip():
        return ""
    root = lxml_html.fragment_fromstring(html, create_parent="div")
    if base_url:
        root.make_links_absolute(base_url, resolve_base_href=False, handle_failures="ignore")
    blocks: list[str] = []
    _collect_blocks(root, blocks, width, prefix="")
    return "\n\n".join(b for b in blocks if b.strip()).rstrip() + "\n"


def _collect_blocks(
    element: lxml_html.HtmlElement, out: list[str], width: int, prefix: str
) -> None:
    inline: list[str] = [element.text or ""]

    def flush() -> None:
        text = re.sub(r"\s+", " ", "".join(inline)).strip().replace(_BR, "\n")
        inline.clear()
        if text:
            out.append(wrap(text, width, prefix))

    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in _BLOCKS or tag == "img" and _is_alone(child):
            flush()
            if tag == "pre":
                code = child.text_content().rstrip("\n")
                out.append("\n".join(prefix + "    " + line for line in code.splitlines()))
            elif tag == "hr":
                out.append(prefix + "-" * 20)
            elif tag in ("ul", "ol"):
                _collect_list(child, out, width, prefix, ordered=tag == "ol")
            elif tag == "blockquote":
                _collect_blocks(child, out, width, prefix + "> ")
            elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                heading = _inline_text(child).strip()
                if heading:
                    out.append(
                        wrap(heading.upper() if tag in ("h1", "h2") else heading, width, prefix)
                    )
            elif tag == "table":
                rows = [
                    " | ".join(_inline_text(c).strip() for c in row if c.tag in ("td", "th"))
                    for row in child.iter("tr")
                ]
                out.append("\n".join(wrap(row, width, prefix) for row in rows))
            elif tag == "img":
                out.append(wrap(_inline_text(child), width, prefix))
            else:
                _collect_blocks(child, out, width, prefix)
        else:
            inline.append(_inline_text(child))
        inline.append(child.tail or "")
    flush()


def _collect_list(
    element: lxml_html.HtmlElement, out: list[str], width: int, prefix: str, ordered: bool
) -> None:
    start = int(element.get("start", "1")) if str(element.get("start", "1")).isdigit() else 1
    items: list[str] = []
    for number, item in enumerate((c for c in element if c.tag == "li"), start=start):
        marker = f"{number}. " if ordered else "- "
        inner: list[str] = []
        _collect_blocks(item, inner, width - len(marker), "")
        for i, block in enumerate(inner):
            lead = marker if i == 0 else " " * len(marker)
            lines = block.splitlines() or [""]
            items.append(
                "\n".join(
                    prefix + (lead if j == 0 else " " * len(marker)) + line
                    for j, line in enumerate(lines)
                )
            )
    if items:
        out.append("\n".join(items))


def _is_alone(img: lxml_html.HtmlElement) -> bool:
    parent = img.getparent()
    return parent is not None and parent.tag in ("figure", "div") and len(parent) == 1


def _inline_text(element: lxml_html.HtmlElement) -> str:
    """Text of an inline element; links become "text (URL)" and images their alt text."""
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag == "br":
        return _BR
    if tag == "img":
        alt = (element.get("alt") or "").strip()
        return f"[{alt}]" if alt else ""
    parts = [element.text or ""]
    for child in element:
        parts.append(_inline_text(child))
        parts.append(child.tail or "")
    text = "".join(parts)
    if tag == "a":
        href = (element.get("href") or "").strip()
        label = re.sub(r"\s+", " ", text).replace(_BR, " ").strip()
        if not href or href.startswith("#"):
            return text
        if not label or label == href or label == href.removeprefix("mailto:"):
            return href
        return f"{label} ({href})"
    return text


def wrap(text: str, width: int = TEXT_WIDTH, prefix: str = "") -> str:
    """Wrap at `width` columns without breaking words or URLs; keep <br> line breaks."""
    lines: list[str] = []
    for line in text.replace(_BR, "\n").split("\n"):
        line = re.sub(r"[ \t]+", " ", line).strip()
        lines.extend(
            textwrap.wrap(
                line,
                width=max(width - len(prefix), 20),
                break_long_words=False,
                break_on_hyphens=False,
                initial_indent=prefix,
                subsequent_indent=prefix,
            )
            or [prefix.rstrip()]
        )
    return "\n".join(lines)
