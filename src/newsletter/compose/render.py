"""Render an issue through its Jinja2 templates into HTML and plain text.

Templates come from the workspace's templates/ folder, file by file over the defaults the
package carries. Autoescaping is on for HTML and StrictUndefined turns a misspelt variable
into an error naming the template and line instead of an empty hole in the email.
Per-recipient values are not known here: the templates see placeholder tokens that
`compose.personalize` fills in later, after inlining. Each template the loader reads is
recorded, so the build can say exactly what it was made from (compose.sources).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin

import jinja2
from markupsafe import Markup

from newsletter.compose.fields import Subscriber, in_html, in_text
from newsletter.compose.fields import default as field_default
from newsletter.compose.images import (
    PublishedImage,
    publish,
    published_for,
    with_published_images,
)
from newsletter.compose.issue import Issue
from newsletter.compose.markup import html_to_text, markdown_to_html, wrap
from newsletter.compose.personalize import Slot, filler, slots, split_tokens, tokens
from newsletter.compose.sources import inputs_digest, source_hash, token_nonce
from newsletter.config import Settings
from newsletter.config_checks import CONTROL_CHARACTERS
from newsletter.errors import TemplateError
from newsletter.workspace import default_templates_dir


@dataclass(frozen=True)
class Rendered:
    """One issue as HTML and text, per-recipient fields still as tokens.

    `nonce` is the per-build part of those tokens; `source_hash` identifies what the issue
    was made from (compose.sources) and `templates` the template files it used.
    """

    subject: str
    html: str
    text: str
    preheader: str = ""
    nonce: str = ""
    source_hash: str = ""
    templates: tuple[str, ...] = ()
    # The local images as published (compose.images): the build writes them beside the email.
    images: tuple[PublishedImage, ...] = ()

    @cached_property
    def html_parts(self) -> list[str]:
        """The HTML split at its tokens once, so personalizing is a join per recipient."""
        return split_tokens(self.html, self.nonce)

    @cached_property
    def text_parts(self) -> list[str]:
        return split_tokens(self.text, self.nonce)

    @cached_property
    def subject_parts(self) -> list[str]:
        return split_tokens(self.subject, self.nonce)

    @cached_property
    def html_filler(self) -> Callable[[Mapping[str, str]], str]:
        return filler(self.html_parts)

    @cached_property
    def text_filler(self) -> Callable[[Mapping[str, str]], str]:
        return filler(self.text_parts)

    @cached_property
    def subject_filler(self) -> Callable[[Mapping[str, str]], str]:
        return filler(self.subject_parts)

    @cached_property
    def slots(self) -> tuple[Slot, ...]:
        """The personal fields the issue uses (compose.fields), each with its default."""
        return slots(self.html_parts, self.text_parts, self.subject_parts)


class _RecordingLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that notes the digest of every template it hands out."""

    def __init__(self, searchpath: Sequence[str]) -> None:
        super().__init__(searchpath)
        self.read: dict[str, str] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            source, filename, uptodate = super().get_source(environment, template)
        except jinja2.TemplateNotFound:
            self.read[template] = ""  # `include ... ignore missing`: adding it is a change
            raise
        self.read[template] = hashlib.sha256(source.encode("utf-8")).hexdigest()
        return source, filename, uptodate


def environment(settings: Settings) -> jinja2.Environment:
    search = [str(settings.templates_dir), str(default_templates_dir())]
    env = jinja2.Environment(
        loader=_RecordingLoader(search),
        autoescape=jinja2.select_autoescape(("html", "htm", "xml"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["wrap"] = wrap
    env.filters["longdate"] = format_date
    env.filters["default"] = env.filters["d"] = field_default  # personal fields' defaults
    return env


def format_date(value: dt.date) -> str:
    return f"{value.day} {value:%B} {value.year}"


def context(
    issue: Issue,
    settings: Settings,
    nonce: str = "",
    images: Mapping[Path, PublishedImage] | None = None,
) -> dict[str, Any]:
    """What the templates see; documented in the README. `images`: see publish_images."""
    base = settings.site_url if settings.site_url.endswith("/") else settings.site_url + "/"
    fields = tokens(nonce)
    images = images or {}

    def absolute(url: str | None) -> str | None:
        return urljoin(base, url) if url else url

    articles = []
    for article in issue.articles:
        folder = article.source.parent
        body_html = with_published_images(
            in_html(markdown_to_html(article.body), nonce), folder, images
        )
        lead = published_for(article.image, folder, images)
        articles.append(
            {
                "title": article.title,
                "url": absolute(article.url),
                "author": article.author,
                "date": article.date,
                "image": lead.url if lead else absolute(article.image),
                "image_width": lead.width if lead else None,
                "image_height": lead.height if lead else None,
                "image_alt": article.image_alt,
                "summary": article.summary,
                "html": Markup(body_html),
                "text": html_to_text(body_html, base),
            }
        )
    intro_html = in_html(markdown_to_html(issue.intro), nonce) if issue.intro else ""
    return {
        "newsletter": {
            "name": settings.name,
            "site_url": settings.site_url,
            "postal_address": settings.postal_address,
            "language": settings.language,
            "direction": settings.direction,
            "sender_name": settings.sender.display_name or settings.name,
            "sender_email": settings.sender.addr_spec,
        },
        "issue": {
            "key": issue.key,
            "subject": in_text(issue.subject, nonce),
            "preheader": in_text(issue.preheader, nonce),
            "date": issue.date,
            "intro_html": Markup(intro_html),
            "intro_text": html_to_text(intro_html, base) if intro_html else "",
            "view_url": f"{settings.archive_url.rstrip('/')}/{issue.key}/",
        },
        "articles": articles,
        "recipient": {"name": fields["name"], "email": fields["email"]},
        "unsubscribe_url": fields["unsubscribe_url"],
        "subscriber": Subscriber(nonce),
    }


def render(issue: Issue, settings: Settings) -> Rendered:
    """Render the issue's HTML and text templates (`<template>.html`, `<template>.txt`).

    Control characters are taken out of what comes back (a character reference in an
    article can make one): none may reach a reader's screen or a header.
    """
    inputs = inputs_digest(issue, settings)
    nonce = token_nonce(inputs)
    env = environment(settings)
    images = publish_images(issue, settings)
    values = context(issue, settings, nonce, images)
    html = render_template(env, f"{issue.template}.html", values)
    text = render_template(env, f"{issue.template}.txt", values)
    read = _loader(env).read
    return Rendered(
        subject=in_text(issue.subject, nonce),
        html=CONTROL_CHARACTERS.sub("", html),
        text=CONTROL_CHARACTERS.sub("", text),
        preheader=issue.preheader,
        nonce=nonce,
        source_hash=source_hash(inputs, read),
        templates=tuple(sorted(read)),
        images=tuple(sorted({i.name: i for i in images.values()}.values(), key=_name)),
    )


def publish_images(issue: Issue, settings: Settings) -> dict[Path, PublishedImage]:
    """The issue's local images, published under <archive_url><issue folder>/."""
    base = f"{settings.archive_url.rstrip('/')}/{issue.key}/"
    found = [(a.source, image) for a in issue.articles for image in a.images]
    return publish(found, issue.folder, base) if found else {}


def _name(image: PublishedImage) -> str:
    return image.name


def template_digests(settings: Settings, names: Sequence[str]) -> dict[str, str] | None:
    """Today's digest of each named template as rendering would find it ("" if missing)."""
    env = environment(settings)
    loader = _loader(env)
    for name in names:
        try:
            loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            continue
        except (OSError, UnicodeDecodeError):
            return None
    return dict(loader.read)


def _loader(env: jinja2.Environment) -> _RecordingLoader:
    return cast(_RecordingLoader, env.loader)


def render_template(env: jinja2.Environment, name: str, values: dict[str, Any]) -> str:
    """One template rendered, its mistakes as one line naming the file and line."""
    try:
        return env.get_template(name).render(values)
    except jinja2.TemplateNotFound as exc:
        where = " or ".join(str(p) for p in env.loader.searchpath)  # type: ignore[union-attr]
        raise TemplateError(f"template '{exc.name}' not found in {where}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{_template_line(exc, name)}: {exc.message}") from exc


def _template_line(exc: BaseException, name: str) -> str:
    """The template file and line an error came from; Jinja2 rewrites tracebacks to them."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((".html", ".txt", ".htm", ".xml", ".css")):
            return f"{frame.filename}:{frame.lineno}"
    return name
