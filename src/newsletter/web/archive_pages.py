"""The archive's pages: an issue's email as anyone may read it, and the index of issues.

An issue's page is made from its build, the inlined HTML every reader got, so the web
copy is the email and not a second rendering that could drift from it. Only what was
the reader's is taken out: the per-recipient fields are filled for a neutral reader
(through compose.personalize, so the defaults of any personal field apply), whatever
names that reader's address goes, and the unsubscribe link becomes a subscribe link.

Links into the archive become relative, so the folder works wherever it is served (a
static host, `serve` at /archive, a test server on 127.0.0.1); the canonical and Open
Graph URLs stay absolute, as those tags require.

The templates are templates/archive/*.html; a workspace's own templates/archive/X
overrides the default file by file, as for the email.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jinja2
from lxml import html as lxml_html
from markupsafe import Markup

from newsletter.compose.personalize import Recipient, personalize
from newsletter.compose.render import Rendered, environment, render_template
from newsletter.config import Settings

INDEX_TEMPLATE = "archive/index.html"
ISSUE_TEMPLATE = "archive/issue.html"
# What the email's unsubscribe link says on the web, where it leads to the subscribe page.
SUBSCRIBE_LABEL = "Subscribe"
_BLOCKS = frozenset({"p", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"})


@dataclass(frozen=True)
class Entry:
    """An issue as the index and the feed list it."""

    key: str
    subject: str
    preheader: str
    date: dt.date

    def to_json(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "preheader": self.preheader,
            "date": self.date.isoformat(),
        }

    @classmethod
    def from_json(cls, key: str, data: dict[str, str]) -> Entry:
        return cls(
            key=key,
            subject=data["subject"],
            preheader=data["preheader"],
            date=dt.date.fromisoformat(data["date"]),
        )


@dataclass(frozen=True)
class PublicEmail:
    """The email's body and style sheets with nothing of any reader left in them."""

    body: str  # the markup inside <body>, links into the archive relative to the page
    styles: str  # the email's <style> blocks (phone layout, dark mode)
    image: str  # the first image's absolute URL, for og:image; "" if none
    archive_links: tuple[str, ...]  # absolute URLs under archive_url the email holds


def archive_base(settings: Settings) -> str:
    url = settings.archive_url
    return url if url.endswith("/") else url + "/"


def issue_url(settings: Settings, key: str) -> str:
    """The page's public address: what the email's "view in browser" link says."""
    return f"{archive_base(settings)}{key}/"


def subscribe_url(settings: Settings) -> str:
    return f"{settings.site_url.rstrip('/')}/subscribe"


def public_email(settings: Settings, rendered: Rendered, key: str) -> PublicEmail:
    """The built email for the web: a neutral reader, subscribe for unsubscribe."""
    marker = f"reader-{rendered.nonce or 'archive'}@example.invalid"
    subscribe = subscribe_url(settings)
    leave = f"{subscribe}#{marker}"
    neutral = Recipient(email=marker, unsubscribe_url=leave)
    document = lxml_html.document_fromstring(personalize(rendered, neutral).html)
    _remove_reader(document, marker, leave, subscribe)
    styles = "".join(
        lxml_html.tostring(style, encoding="unicode") for style in document.iter("style")
    )
    body = document.body
    for hidden in [child for child in body if _hidden(child)]:  # the preheader
        hidden.drop_tree()
    base = archive_base(settings)
    images = [src for img in body.iter("img") if (src := img.get("src", ""))]
    links: set[str] = set()

    def relative(url: str) -> str:
        if not url.startswith(base):
            return url
        links.add(url)
        rest = url[len(base) :]
        inside = rest.removeprefix(f"{key}/") if rest.startswith(f"{key}/") else None
        return (inside or "./") if inside is not None else f"../{rest}"

    body.rewrite_links(relative, resolve_base_href=False)
    markup = (body.text or "") + "".join(
        lxml_html.tostring(child, encoding="unicode") for child in body
    )
    return PublicEmail(
        body=markup,
        styles=styles,
        image=images[0] if images else "",
        archive_links=tuple(sorted(links)),
    )


def _remove_reader(document: Any, marker: str, leave: str, subscribe: str) -> None:
    """Take the neutral reader's address out, with the sentence that names it."""
    for element in list(document.iter()):
        if not isinstance(element.tag, str):
            continue  # a comment
        if element.get("href") == leave:
            element.set("href", subscribe)
            for child in list(element):
                child.drop_tree()
            element.text = SUBSCRIBE_LABEL
        for name, value in list(element.attrib.items()):
            if leave in value:
                element.set(name, value.replace(leave, subscribe))
            elif marker in value:
                del element.attrib[name]
    for element in list(document.iter()):
        if not isinstance(element.tag, str) or element.getparent() is None:
            continue
        if marker in (element.text or "") or marker in (element.tail or ""):
            holder = element if marker in (element.text or "") else element.getparent()
            block = next((a for a in holder.iterancestors() if a.tag in _BLOCKS), None)
            if holder.tag in _BLOCKS:
                block = holder
            if block is not None and block.getparent() is not None:
                block.drop_tree()
            else:
                element.text = (element.text or "").replace(marker, "")
                element.tail = (element.tail or "").replace(marker, "")


def _hidden(element: Any) -> bool:
    style = (element.get("style") or "").replace(" ", "").lower()
    return "display:none" in style


# --- rendering ------------------------------------------------------------------------------


def archive_environment(settings: Settings) -> jinja2.Environment:
    """The email's Jinja2 environment: the same loader, filters and strictness."""
    return environment(settings)


def page_context(settings: Settings, root: str) -> dict[str, Any]:
    return {
        "newsletter": {
            "name": settings.name,
            "site_url": settings.site_url,
            "archive_url": archive_base(settings),
            "subscribe_url": subscribe_url(settings),
            "postal_address": settings.postal_address,
            "language": settings.language,
            "locale": settings.language.replace("-", "_"),
            "direction": settings.direction,
        },
        "root": root,  # the archive's top, relative to the page
    }


def issue_page(
    env: jinja2.Environment, settings: Settings, entry: Entry, email: PublicEmail
) -> bytes:
    values = page_context(settings, "../")
    values.update(
        issue={
            "key": entry.key,
            "subject": entry.subject,
            "preheader": entry.preheader,
            "date": entry.date,
            "url": issue_url(settings, entry.key),
            "image": email.image,
        },
        email=Markup(email.body),
        email_styles=Markup(email.styles),
    )
    return render_page(env, ISSUE_TEMPLATE, values)


def index_page(env: jinja2.Environment, settings: Settings, entries: list[Entry]) -> bytes:
    values = page_context(settings, "")
    values["url"] = archive_base(settings)
    values["issues"] = [
        {
            "key": e.key,
            "subject": e.subject,
            "preheader": e.preheader,
            "date": e.date,
            "year": e.date.year,
            "path": f"{e.key}/",
        }
        for e in entries
    ]
    return render_page(env, INDEX_TEMPLATE, values)


def render_page(env: jinja2.Environment, name: str, values: dict[str, Any]) -> bytes:
    """One page, with a template's mistakes as one line naming the file and line."""
    return render_template(env, name, values).encode("utf-8")
