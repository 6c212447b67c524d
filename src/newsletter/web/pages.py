"""The subscriber pages' templates: templates/pages/*.html, overridable file by file.

A workspace's own templates/pages/X wins over the package's default X, as the email
templates do. Autoescaped (a subscriber's name is text, never markup) and strict: a
misspelt variable is an error when the page is made, not an empty hole in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from newsletter.config import Settings
from newsletter.workspace import default_templates_dir

PAGES = "pages"


class Pages:
    """Renders a page with the newsletter's name, language and direction in its context."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader(settings.templates_dir / PAGES),
                    jinja2.FileSystemLoader(default_templates_dir() / PAGES),
                ]
            ),
            # Pages are HTML; the confirmation email's text part is not: "O'Brien" stays so.
            autoescape=jinja2.select_autoescape(("html", "htm", "xml"), default=False),
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        self.common = {
            "newsletter": settings.name,
            "language": settings.language,
            "direction": settings.direction,
            "site_url": settings.site_url,
            "postal_address": settings.postal_address,
        }

    def render(self, name: str, context: Mapping[str, Any] | None = None) -> str:
        template = self.environment.get_template(name)
        return template.render({**self.common, **(context or {})})

    def response(
        self,
        name: str,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        return HTMLResponse(self.render(name, context), status_code, headers=headers)
