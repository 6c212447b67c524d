"""CSS that most major mail programs ignore, from caniemail's support data.

Every property, at-rule and CSS function the email uses is looked up in the caniemail
subset shipped in checks/data/ (its source and licence are beside it). A feature fires
when more than half of the major clients there do not support it at all: a rule most
readers never get is design the editor cannot see. Two kinds are let through: hints
that only the clients reading them act on, and properties written with a fallback that
the others know.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cssutils

from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule

cssutils.log.setLevel(logging.CRITICAL)

DATA = Path(__file__).resolve().parents[1] / "data" / "caniemail.json"

# Hints: a client that does not know them loses nothing.
ENHANCEMENTS = {
    "css-color-scheme": "tells Apple Mail the email has its own dark palette",
}
# A property next to its older name, which the other clients read instead.
FALLBACKS = {"css-overflow-wrap": "word-wrap"}
# Longhands caniemail files under their shorthand.
_SHORTHANDS = ("padding", "margin", "border", "background", "outline", "list-style")
_POSITIONS = frozenset({"left", "right", "top", "bottom"})
_FUNCTIONS = {
    "linear-gradient(": "css-linear-gradient",
    "radial-gradient(": "css-radial-gradient",
    "conic-gradient(": "css-conic-gradient",
    "clamp(": "css-function-clamp",
    "min(": "css-function-min",
    "max(": "css-function-max",
    "light-dark(": "css-function-light-dark",
    "calc(": "css-unit-calc",
    "var(": "css-variables",
}
_AT_RULES = {
    "@media": "css-at-media",
    "@font-face": "css-at-font-face",
    "@import": "css-at-import",
    "@keyframes": "css-at-keyframes",
    "@supports": "css-at-supports",
}


@dataclass(frozen=True)
class Support:
    clients: tuple[str, ...]
    names: dict[str, str]
    features: dict[str, dict[str, str]]

    def unsupported(self, slug: str) -> list[str]:
        letters = self.features.get(slug, {}).get("support", "")
        return [
            client for client, letter in zip(self.clients, letters, strict=False) if letter == "n"
        ]

    def label(self, client: str) -> str:
        family, _, platform = client.partition("/")
        return f"{self.names.get(family, family)} {self.names.get(platform, platform)}"


@cache
def support() -> Support:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return Support(tuple(data["clients"]), data["nicenames"], data["features"])


def _slugs(name: str, value: str) -> Iterator[str]:
    """The caniemail features one declaration uses."""
    name, value = name.lower(), value.lower()
    if name.startswith("--"):
        yield "css-variables"
    elif not name.startswith(("-", "mso-")):
        features = support().features
        if f"css-{name}" in features:
            yield f"css-{name}"
        elif name in _POSITIONS:
            yield "css-left-right-top-bottom"
        else:
            yield from (f"css-{s}" for s in _SHORTHANDS if name.startswith(f"{s}-"))
        if name == "display" and value.strip() in ("flex", "inline-flex", "grid", "inline-grid"):
            yield f"css-display-{value.strip().removeprefix('inline-')}"
    compact = value.replace(" ", "")
    yield from (slug for text, slug in _FUNCTIONS.items() if text in compact)


def _declarations(email: BuiltEmail) -> Iterator[tuple[str, set[str], Any]]:
    """(slug, the properties declared beside it, where) for every feature used.

    "Where" is an element, turned into a place only for what fires: finding a unique
    selector costs more than the check itself. Style attributes repeat (premailer writes
    the same one on every paragraph), so each distinct one is read once.
    """
    seen: dict[str, list[tuple[str, set[str]]]] = {}
    for element in email.doc.iter():
        style = element.get("style") if isinstance(element.tag, str) else None
        if style:
            if style not in seen:
                block = cssutils.parseStyle(style, validate=False)
                seen[style] = [(slug, names) for slug, names in _block(block)]
            for slug, names in seen[style]:
                yield slug, names, element
    for style_element in email.doc.iter("style"):
        sheet = cssutils.parseString(style_element.text or "", validate=False)
        for slug, names in _rules(sheet.cssRules):
            yield slug, names, style_element


def _rules(rules: Any) -> Iterator[tuple[str, set[str]]]:
    for css_rule in rules:
        text = css_rule.cssText.lstrip().lower()
        for at, slug in _AT_RULES.items():
            if text.startswith(at):
                yield slug, set()
        if css_rule.type == css_rule.STYLE_RULE:
            yield from _block(css_rule.style)
        elif hasattr(css_rule, "cssRules"):
            yield from _rules(css_rule.cssRules)


def _block(block: Any) -> Iterator[tuple[str, set[str]]]:
    names = {p.name.lower() for p in block}
    for declaration in block:
        for slug in _slugs(declaration.name, declaration.value):
            yield slug, names


@rule("css-unsupported", Severity.WARNING, "CSS that most major mail programs ignore")
def css_unsupported(email: BuiltEmail) -> Found:
    data = support()
    found: dict[str, tuple[Any, int]] = {}
    for slug, beside, element in _declarations(email):
        if slug in ENHANCEMENTS or FALLBACKS.get(slug) in beside:
            continue
        if len(data.unsupported(slug)) * 2 > len(data.clients):
            first, count = found.get(slug, (element, 0))
            found[slug] = (first, count + 1)
    for slug, (element, count) in found.items():
        feature = data.features[slug]
        missing = ", ".join(data.label(c) for c in data.unsupported(slug))
        uses = f" ({count} uses)" if count > 1 else ""
        yield (
            f"{feature['title']}{uses} is not supported by {missing} "
            f"(caniemail, tested {feature['last_test_date']})",
            email.html_place(element),
        )
