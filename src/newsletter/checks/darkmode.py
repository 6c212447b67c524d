"""The template's dark-mode rules: read for the contrast check, unwrapped for the preview.

Apple Mail and the Outlook apps apply `@media (prefers-color-scheme: dark)` rules; a
browser shows them only in a dark colour scheme, so the preview makes them unconditional.
"""

from __future__ import annotations

import logging
from typing import Any

import cssutils
from lxml import html as lxml_html

cssutils.log.setLevel(logging.CRITICAL)  # it warns about every mso- and -webkit- property


def _dark(rule: Any) -> bool:
    return rule.type == rule.MEDIA_RULE and "prefers-color-scheme: dark" in " ".join(
        rule.media.mediaText.lower().split()
    )


def dark_rules(doc: Any) -> list[tuple[str, dict[str, tuple[str, bool]]]]:
    """(selector, {property: (value, important)}) for each dark-mode rule, in order."""
    found: list[tuple[str, dict[str, tuple[str, bool]]]] = []
    for style in doc.iter("style"):
        sheet = cssutils.parseString(style.text or "", validate=False)
        for media in (r for r in sheet if _dark(r)):
            for inner in media.cssRules:
                if inner.type != inner.STYLE_RULE:
                    continue
                declarations = {
                    p.name.lower(): (p.value, p.priority == "important") for p in inner.style
                }
                for selector in inner.selectorList:
                    found.append((selector.selectorText, declarations))
    return found


def unconditional_dark(html: str) -> str:
    """`html` with its prefers-color-scheme: dark rules applied whatever the scheme."""
    doc = lxml_html.document_fromstring(html)
    for style in doc.iter("style"):
        sheet = cssutils.parseString(style.text or "", validate=False)
        changed = False
        for index in reversed(range(len(sheet.cssRules))):
            media = sheet.cssRules[index]
            if _dark(media):
                texts = [inner.cssText for inner in media.cssRules]
                sheet.deleteRule(index)
                for offset, text in enumerate(texts):
                    sheet.insertRule(text, index + offset)
                changed = True
        if changed:
            style.text = sheet.cssText.decode("utf-8")
    out: bytes = lxml_html.tostring(doc, doctype="<!DOCTYPE html>", encoding="utf-8")
    return out.decode("utf-8")
