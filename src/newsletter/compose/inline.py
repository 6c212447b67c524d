"""Inline the issue's CSS into style attributes, once per issue.

Gmail and others ignore or drop <style> blocks in some views, so every rule that can be
inlined is. Rules that only work from a <style> block (@media for phones, dark mode) stay
there: the template marks that block data-premailer="ignore".
"""

from __future__ import annotations

import logging
import warnings

import cssutils
from lxml import etree
from premailer import Premailer

# cssutils warns about every mso-/-webkit- property it does not know, once per element.
cssutils.log.setLevel(logging.CRITICAL)


def inline_css(html: str, base_url: str) -> str:
    """Return `html` with its CSS inlined and every relative link and image made absolute.

    allow_network=False: premailer would otherwise fetch linked stylesheets.
    strip_important=False: the default strips !important from @media rules too, and then
    phone layouts lose to the inlined desktop styles.
    """
    inliner = _Inliner(
        html,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        allow_network=False,
        strip_important=False,
        keep_style_tags=False,
        remove_classes=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out: str = inliner.transform(pretty_print=False)
    if html.lstrip().lower().startswith("<!doctype") and not out.startswith("<!DOCTYPE"):
        out = "<!DOCTYPE html>\n" + out
    return ascii_html(out)


class _Inliner(Premailer):  # type: ignore[misc]
    """Premailer that leaves an image's width and height attributes as the HTML gave them.

    Premailer copies CSS width and height into attributes, over any already there: an
    image's `width="536" height="300"` (what Outlook sizes it by) became the CSS's
    `width="100%" height="auto"`, and `height="auto"` means nothing.
    """

    def _style_to_basic_html_attributes(
        self, element: etree._Element, style_content: str, force: bool = False
    ) -> None:
        if element.tag != "img":
            super()._style_to_basic_html_attributes(element, style_content, force)
            return
        given = {k: element.attrib[k] for k in ("width", "height") if k in element.attrib}
        super()._style_to_basic_html_attributes(element, style_content, force)
        for key in ("width", "height"):
            if key in given:
                element.attrib[key] = given[key]
            elif not element.attrib.get(key, "0").isdigit():
                del element.attrib[key]


def ascii_html(html: str) -> str:
    """Non-ASCII characters as character references (“ becomes &#8220;).

    The page reads the same, survives any transfer encoding, and, being pure ASCII,
    is the cheapest string there is to copy per recipient and to encode as JSON: a
    single curly quote otherwise makes Python store the whole 50 KB at two bytes a
    character, and encoding it for a provider cost several times more.
    """
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")
