"""Inline the issue's CSS into style attributes, once per issue.

Gmail and others ignore or drop <style> blocks in some views, so every rule that can be
inlined is. Rules that only work from a <style> block (@media for phones, dark mode) stay
there: the template marks that block data-premailer="ignore".
"""

from __future__ import annotations

import logging
import warnings

import cssutils
from premailer import Premailer

# cssutils warns about every mso-/-webkit- property it does not know, once per element.
cssutils.log.setLevel(logging.CRITICAL)


def inline_css(html: str, base_url: str) -> str:
    """Return `html` with its CSS inlined and every relative link and image made absolute.

    allow_network=False: premailer would otherwise fetch linked stylesheets.
    strip_important=False: the default strips !important from @media rules too, and then
    phone layouts lose to the inlined desktop styles.
    """
    inliner = Premailer(
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


def ascii_html(html: str) -> str:
    """Non-ASCII characters as character references (“ becomes &#8220;).

    The page reads the same, survives any transfer encoding, and, being pure ASCII,
    is the cheapest string there is to copy per recipient and to encode as JSON: a
    single curly quote otherwise makes Python store the whole 50 KB at two bytes a
    character, and encoding it for a provider cost several times more.
    """
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")
