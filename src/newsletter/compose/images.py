"""Local images: found in an article, checked, and published under content-hashed names.

An article refers to a local image by a path relative to its own file: front matter
`image: chart.png`, `![Chart](chart.png)` or `<img src="chart.png">`. `add` copies those
files into the issue folder; a build publishes each at <archive_url><issue folder>/ as
chart-<8 hex>.png, the hash of the bytes published, so a changed image gets a new URL
and no cache anywhere shows the old one. The build folder holds the files under those
names, for the archive to publish. A path starting with / is a path on the site and an
http(s) image is someone else's: both stay as they are.

An image is shown at most CONTENT_WIDTH pixels wide (the template's 600 px card less its
padding), never wider than it is, with `width` and `height` set so Outlook does not show
it at its natural size; the file is at most twice as wide, for high-density screens.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from newsletter.compose.markup import markdown_to_html
from newsletter.compose.pictures import SUFFIXES, inspect, prepare, too_big
from newsletter.errors import ContentError
from newsletter.files import PATH_LIMIT, os_reason, quoted, shown

CONTENT_WIDTH = 536
FILE_WIDTH = 2 * CONTENT_WIDTH

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_IMG = re.compile(r"<img\b([^>]*?)\s*/?>", re.IGNORECASE)
# The sanitizer writes every attribute as name="value", with " and & escaped.
_ATTRIBUTE = re.compile(r'([a-zA-Z-]+)="([^"]*)"')


@dataclass(frozen=True)
class LocalImage:
    """One reference to an image file beside an article: as written, where, and what."""

    ref: str  # as the article gives it (a src, percent-encoded as Markdown makes it)
    path: Path  # the file, links followed
    line: int  # the article file's line that names it
    digest: str  # SHA-256 of the file: part of what a build is made from
    width: int
    height: int


@dataclass(frozen=True)
class PublishedImage:
    """An image as the email links to it, and the file the build writes for the archive."""

    name: str  # chart-1a2b3c4d.png
    url: str
    data: bytes
    width: int  # the size shown in the email
    height: int

    def shown(self, width: int | None) -> tuple[int, int]:
        """The size shown for a requested width (from an <img width>), at most the column's."""
        shown_width = min(width, self.width) if width else self.width
        return shown_width, max(1, round(self.height * shown_width / self.width))


def is_local(ref: str | None) -> bool:
    """Whether `ref` names a file beside the article (not a URL, not a path on the site)."""
    if not ref or not ref.strip():
        return False
    return not _SCHEME.match(ref) and not ref.startswith(("/", "\\", "#", "?"))


def relative_path(ref: str) -> PurePosixPath:
    """The file path a local reference means: its query and fragment gone, %xx decoded."""
    return PurePosixPath(unquote(urlsplit(ref).path))


def image_sources(body_html: str) -> list[str]:
    """The src of every <img> in sanitized HTML, as written (entities decoded)."""
    found = []
    for tag in _IMG.finditer(body_html):
        attributes = dict(_ATTRIBUTE.findall(tag.group(1)))
        if "src" in attributes:
            found.append(html.unescape(attributes["src"]))
    return found


def find_images(
    path: Path, text: str, image: str | None, body: str
) -> tuple[tuple[LocalImage, ...], list[str]]:
    """The local images an article file refers to, and a problem line for each bad one."""
    refs: list[str] = [image] if image and is_local(image) else []
    if "![" in body or "<img" in body.lower():
        refs.extend(src for src in image_sources(markdown_to_html(body)) if is_local(src))
    images: list[LocalImage] = []
    problems: list[str] = []
    seen: set[str] = set()
    for ref in refs:
        if ref in seen:
            continue
        seen.add(ref)
        line = _line_of(text, ref)
        try:
            images.append(_local_image(path, ref, line))
        except ValueError as exc:
            problems.append(f"{shown(path, PATH_LIMIT)}:{line}: image {quoted(ref)} {exc}")
    return tuple(images), problems


def _local_image(article: Path, ref: str, line: int) -> LocalImage:
    relative = relative_path(ref)
    try:
        target = (article.parent / relative).resolve()
        size = target.stat().st_size
        if not target.is_file():
            raise ValueError(f"is not a file ({shown(target, PATH_LIMIT)})")
        problem = too_big(size)
        if problem:
            raise ValueError(problem)
        data = target.read_bytes()
    except FileNotFoundError as exc:
        raise ValueError(
            f"not found (looked for {shown(article.parent / relative, PATH_LIMIT)})"
        ) from exc
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot be read ({os_reason(exc)})") from exc
    info = inspect(data)
    return LocalImage(
        ref=ref,
        path=target,
        line=line,
        digest=hashlib.sha256(data).hexdigest(),
        width=info.width,
        height=info.height,
    )


def _line_of(text: str, ref: str) -> int:
    """The first line of the file naming `ref` (as written, or %xx-decoded)."""
    for needle in (ref, unquote(ref), html.escape(ref)):
        at = text.find(needle)
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return 1


# --- publishing ----------------------------------------------------------------------------


def publish(
    images: list[tuple[Path, LocalImage]], folder: Path, base_url: str
) -> dict[Path, PublishedImage]:
    """Each distinct image file, published under base_url; keyed by the file's path.

    `images` pairs each image with the article naming it, for messages. An image outside
    the issue folder is refused: the issue folder is what is kept and published.
    """
    published: dict[Path, PublishedImage] = {}
    problems: list[str] = []
    inside = folder.resolve()
    for article, image in images:
        if image.path in published:
            continue
        where = f"{shown(article, PATH_LIMIT)}:{image.line}: image {quoted(image.ref)}"
        if not image.path.is_relative_to(inside):
            problems.append(
                f"{where} is outside the issue folder; `newsletter add` copies an "
                "article's images in"
            )
            continue
        try:
            data = image.path.read_bytes()
            prepared = prepare(data, FILE_WIDTH)
        except OSError as exc:
            problems.append(f"{where} cannot be read ({os_reason(exc)})")
            continue
        except ValueError as exc:
            problems.append(f"{where} {exc}")
            continue
        name = _published_name(image.path, prepared.format, prepared.data)
        width = min(prepared.width, CONTENT_WIDTH)
        height = max(1, round(prepared.height * width / prepared.width))
        published[image.path] = PublishedImage(
            name=name, url=base_url + name, data=prepared.data, width=width, height=height
        )
    if problems:
        raise ContentError("\n".join(problems))
    return published


def _published_name(path: Path, fmt: str, data: bytes) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:60] or "image"
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg") or fmt != "JPEG":
        suffix = SUFFIXES[fmt]
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}{suffix}"


def with_published_images(
    body_html: str, article_dir: Path, published: Mapping[Path, PublishedImage]
) -> str:
    """Sanitized HTML with each local image's src, width and height set to its published copy.

    A width the author gave (`<img width="200">`) is kept when it is narrower.
    """
    if not published or "<img" not in body_html:
        return body_html

    def replaced(tag: re.Match[str]) -> str:
        attributes = dict(_ATTRIBUTE.findall(tag.group(1)))
        src = html.unescape(attributes.get("src", ""))
        image = _lookup(src, article_dir, published)
        if image is None:
            return tag.group(0)
        given = attributes.get("width", "")
        width, height = image.shown(int(given) if given.isdigit() and int(given) > 0 else None)
        attributes.update(src=html.escape(image.url), width=str(width), height=str(height))
        return "<img " + " ".join(f'{k}="{v}"' for k, v in attributes.items()) + ">"

    return _IMG.sub(replaced, body_html)


def published_for(
    ref: str | None, article_dir: Path, published: Mapping[Path, PublishedImage]
) -> PublishedImage | None:
    """The published copy of an article's front-matter image, if it is a local one."""
    return _lookup(ref or "", article_dir, published)


def _lookup(
    ref: str, article_dir: Path, published: Mapping[Path, PublishedImage]
) -> PublishedImage | None:
    if not is_local(ref):
        return None
    try:
        return published.get((article_dir / relative_path(ref)).resolve())
    except (OSError, RuntimeError):
        return None
