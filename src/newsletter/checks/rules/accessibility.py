"""Readable by everyone: a language, headings in order, text that stands out from its ground.

Contrast is judged on the colours the template gives each text, as inlined (light mode)
and with the template's `prefers-color-scheme: dark` rules applied (dark mode), by WCAG
2 AA: 4.5:1, or 3:1 for large text (24px, or 18.66px bold).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from newsletter.checks.colours import RGB, contrast, hex_colour, parse_colour
from newsletter.checks.darkmode import dark_rules
from newsletter.checks.email import BuiltEmail
from newsletter.checks.findings import Found, Severity, rule

NORMAL_TEXT_RATIO = 4.5
LARGE_TEXT_RATIO = 3.0
_HEADING = re.compile(r"^h([1-6])$")
_SKIPPED = frozenset({"head", "style", "script", "title"})
_PX = re.compile(r"^\s*([\d.]+)px")


@rule("lang-missing", Severity.ERROR, "the HTML does not say its language")
def lang_missing(email: BuiltEmail) -> Found:
    root = email.doc
    if not (root.get("lang") or "").strip():
        yield (
            "<html> has no lang attribute: screen readers guess the language; the template "
            'should say lang="{{ newsletter.language }}"',
            email.html_place(root),
        )


@rule("heading-order", Severity.WARNING, "a heading level is skipped")
def heading_order(email: BuiltEmail) -> Found:
    previous = 0
    for element in email.doc.iter():
        match = _HEADING.match(element.tag) if isinstance(element.tag, str) else None
        if not match:
            continue
        level = int(match.group(1))
        if level > previous + 1:
            after = f"after <h{previous}>" if previous else "as the first heading"
            yield (
                f"<h{level}> {_text(element)!r} comes {after}: screen-reader users navigate "
                "by heading levels; do not skip one",
                email.html_place(element),
            )
        previous = level


def _text(element: Any) -> str:
    words = " ".join(element.text_content().split())
    return words if len(words) <= 40 else words[:37] + "..."


@rule("contrast", Severity.WARNING, "text contrast below 4.5:1 in light or dark mode")
def contrast_check(email: BuiltEmail) -> Found:
    doc = email.doc
    overrides: dict[Any, dict[str, tuple[str, bool]]] = {}
    for selector, declarations in dark_rules(doc):
        try:
            matched = doc.cssselect(selector)
        except Exception:  # noqa: BLE001 - a selector cssselect cannot read is not judged
            continue
        for element in matched:
            overrides.setdefault(element, {}).update(declarations)
    seen: set[tuple[str, RGB, RGB]] = set()
    for mode, style in (("light", _cached(_inline)), ("dark", _cached(_with(overrides)))):
        for element in _texts(doc.find("body"), style):
            fg = _inherited(element, style, "color") or (0, 0, 0)
            bg = _background(element, style) or (255, 255, 255)
            needed = LARGE_TEXT_RATIO if _large(element, style) else NORMAL_TEXT_RATIO
            ratio = contrast(fg, bg)
            if ratio < needed and (mode, fg, bg) not in seen:
                seen.add((mode, fg, bg))
                yield (
                    f"text {hex_colour(fg)} on {hex_colour(bg)} is {ratio:.2f}:1 in {mode} "
                    f"mode; WCAG AA asks {needed:g}:1 ({_text(element)!r})",
                    email.html_place(element),
                )


Style = Callable[[Any], dict[str, str]]


def _cached(style: Style) -> Style:
    """Each element's style read once: text walks up through the same ancestors."""
    known: dict[Any, dict[str, str]] = {}

    def cached(element: Any) -> dict[str, str]:
        if element not in known:
            known[element] = style(element)
        return known[element]

    return cached


def _inline(element: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for declaration in (element.get("style") or "").split(";"):
        name, colon, value = declaration.partition(":")
        if colon:
            found[name.strip().lower()] = value.replace("!important", "").strip()
    if element.tag == "font" and element.get("color"):
        found.setdefault("color", element.get("color"))
    if element.get("bgcolor"):
        found.setdefault("background-color", element.get("bgcolor"))
    return found


def _with(overrides: dict[Any, dict[str, tuple[str, bool]]]) -> Style:
    def style(element: Any) -> dict[str, str]:
        found = _inline(element)
        for name, (value, important) in overrides.get(element, {}).items():
            if important or name not in found:
                found[name] = value
        return found

    return style


def _texts(body: Any, style: Style) -> Iterator[Any]:
    """Visible elements that hold text of their own."""
    if body is None:
        return
    stack = [body]
    while stack:
        element = stack.pop()
        if not isinstance(element.tag, str) or element.tag in _SKIPPED:
            continue
        declared = style(element)
        if declared.get("display", "").startswith("none"):
            continue
        own = [element.text, *(child.tail for child in element)]
        if any((t or "").strip() for t in own):
            yield element
        stack.extend(reversed(list(element)))


def _inherited(element: Any, style: Style, name: str) -> RGB | None:
    node = element
    while node is not None:
        colour = parse_colour(style(node).get(name, ""))
        if colour is not None:
            return colour  # "inherit" and the like look further up
        node = node.getparent()
    return None


def _background(element: Any, style: Style) -> RGB | None:
    node = element
    while node is not None:
        declared = style(node)
        for name in ("background-color", "background"):
            for word in declared.get(name, "").split():
                colour = parse_colour(word)
                if colour is not None:
                    return colour
        node = node.getparent()
    return None


def _large(element: Any, style: Style) -> bool:
    size = weight = None
    node = element
    while node is not None and (size is None or weight is None):
        declared = style(node)
        if size is None and "font-size" in declared:
            match = _PX.match(declared["font-size"])
            size = float(match.group(1)) if match else 0.0
        if weight is None and "font-weight" in declared:
            weight = declared["font-weight"]
        if weight is None and node.tag in ("b", "strong", "h1", "h2", "h3", "h4", "h5", "h6"):
            weight = "bold"
        node = node.getparent()
    bold = (weight or "").strip() in ("bold", "bolder", "700", "800", "900")
    return (size or 16.0) >= 24 or (bold and (size or 16.0) >= 18.66)
