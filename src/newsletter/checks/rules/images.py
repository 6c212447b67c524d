"""Images: described, sized, reachable from any inbox, and there at all.

An image without alt text is a hole for screen readers and for everyone whose mail
program blocks images; one without a width attribute renders at its natural size in
Outlook; a relative URL loads nowhere; an http URL is refused or flagged by some clients.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Place, Severity, rule

# Where an article names an image: front matter, Markdown and raw HTML.
_FRONT_MATTER_IMAGE = re.compile(r"^image:\s*['\"]?([^'\"#\s]+)")
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
_HTML_IMAGE = re.compile(r"<img\b[^>]*\bsrc\s*=\s*['\"]([^'\"]+)", re.IGNORECASE)


def _images(email: BuiltEmail) -> Iterator[tuple[str, Any]]:
    """(src, element) of every image; the element becomes a place only if a rule fires."""
    for img in email.doc.iter("img"):
        yield (img.get("src") or "").strip(), img


@rule("image-alt", Severity.ERROR, "an image without alt text")
def image_alt(email: BuiltEmail) -> Found:
    for img in email.doc.iter("img"):
        if img.get("alt") is None:
            yield (
                f"image {img.get('src') or '(no src)'} has no alt text; describe it, "
                'or give alt="" if it is only decoration',
                email.html_place(img),
            )


@rule("image-width", Severity.WARNING, "an image without a width attribute")
def image_width(email: BuiltEmail) -> Found:
    for img in email.doc.iter("img"):
        if not (img.get("width") or "").strip():
            yield (
                f"image {img.get('src') or '(no src)'} has no width attribute: Outlook shows "
                "it at its natural size, however wide",
                email.html_place(img),
            )


@rule("image-relative", Severity.ERROR, "an image with a relative URL")
def image_relative(email: BuiltEmail) -> Found:
    for src, img in _images(email):
        if not urlsplit(src).scheme:
            yield (
                f"image {src or '(empty src)'} is relative: no inbox can load it",
                email.html_place(img),
            )


@rule("image-insecure", Severity.WARNING, "an image over http instead of https")
def image_insecure(email: BuiltEmail) -> Found:
    for src, img in _images(email):
        if urlsplit(src).scheme == "http":
            yield (
                f"image {src} is not https: some mail programs block or flag it",
                email.html_place(img),
            )


@rule("image-missing", Severity.ERROR, "a local image an article names is not there")
def image_missing(email: BuiltEmail) -> Found:
    """A relative path in an article is a file beside it; a path from / is the website's."""
    for path, number, line in email.source_lines():
        if path.suffix.lower() not in {".md", ".markdown", ".html", ".htm"}:
            continue
        for pattern in (_FRONT_MATTER_IMAGE, _MARKDOWN_IMAGE, _HTML_IMAGE):
            for match in pattern.finditer(line):
                src = match.group(1)
                if _local(src) and not (path.parent / _path_part(src)).is_file():
                    yield (
                        f"image {src} is not in the issue folder",
                        Place(email.shown(path), line=number),
                    )


def _local(src: str) -> bool:
    parts = urlsplit(src)
    return not parts.scheme and not parts.netloc and not src.startswith(("/", "#"))


def _path_part(src: str) -> Path:
    return Path(urlsplit(src).path)


@rule("image-broken", Severity.ERROR, "an image that does not load (--links)", needs="links")
def image_broken(email: BuiltEmail) -> Found:
    fetched = email.fetched or {}
    for src, img in _images(email):
        result = fetched.get(src)
        if result is None:
            continue
        if result.broken:
            yield (
                f"image {src} does not load: {_why(result.status, result.problem)}",
                email.html_place(img),
            )
        elif result.content_type and not result.content_type.startswith("image/"):
            yield (
                f"image {src} is not an image (it is {result.content_type})",
                email.html_place(img),
            )


def _why(status: int | None, problem: str) -> str:
    return f"HTTP {status}" if status is not None else problem
