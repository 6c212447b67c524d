"""Images: described, sized, reachable from any inbox, and there at all.

An image without alt text is a hole for screen readers and for everyone whose mail
program blocks images; one without a width attribute renders at its natural size in
Outlook; a relative URL loads nowhere; an http URL is refused or flagged by some clients.
A local image an article names that is not there needs no rule: the build refuses it,
naming the article and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule


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
