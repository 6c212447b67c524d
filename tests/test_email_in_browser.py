"""The built email in a real browser: Debian's Chromium, driven by Playwright.

What only a browser can tell: that no text makes the email wider than a phone's screen,
and that every text is readable in light and in dark mode (Apple Mail and the Outlook
apps apply the template's `prefers-color-scheme: dark` rules).

The email is opened from a file with every request that is not file: or data: blocked,
so the example's remote image URLs are never fetched.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from newsletter.compose.build import build_issue
from newsletter.config import load_settings

from conftest import EXAMPLE, REPO, write

# WCAG 2.x AA (1.4.3): large text is at least 24px, or at least 18.66px (14pt) and bold.
NORMAL_TEXT_RATIO = 4.5
LARGE_TEXT_RATIO = 3.0


def _offline(route: Any) -> None:
    if route.request.url.startswith(("file:", "data:")):
        route.continue_()
    else:
        route.abort()


def open_email(browser: Any, html: Path, width: int, scheme: str = "light") -> Any:
    """A page showing `html` at `width` CSS pixels in the given colour scheme, offline."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.route("**/*", _offline)
    page = context.new_page()
    page.emulate_media(color_scheme=scheme)
    page.goto(html.as_uri())
    return page


def copy_example(root: Path) -> Path:
    """A copy of the example workspace under `root`, as conftest's `workspace` fixture
    makes, but made here so that a module-scoped fixture builds each issue only once."""
    root.mkdir(parents=True)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    shutil.copytree(REPO / "issues" / EXAMPLE, root / "issues" / EXAMPLE)
    return root / "issues" / EXAMPLE


def add_article(issue_dir: Path, name: str, text: str) -> None:
    """Write an article into the issue and append it to issue.toml's list of articles."""
    write(issue_dir / name, text)
    toml = issue_dir / "issue.toml"
    data = tomlkit.parse(toml.read_text(encoding="utf-8"))
    data["articles"].append(name)  # type: ignore[union-attr]
    toml.write_text(tomlkit.dumps(data), encoding="utf-8")


def build(issue_dir: Path) -> Path:
    """Build the issue as `newsletter build` does; returns the sample reader's email.html."""
    settings = load_settings(issue_dir.parents[1], environ={})
    result = build_issue(settings, issue_dir)
    return result.out_dir / "email.html"


# 130 characters without a space each, as the finding in issue 9 measured them.
LONG_WORD = ("Donaudampfschifffahrtsgesellschaftskapitaen" * 4)[:130]
LONG_URL = "https://millbrook.example.org/news/" + "a-very-long-path-segment-" * 3 + "x" * 20

LONG_WORDS_ARTICLE = f"""\
---
title: Words that do not fit {LONG_WORD}
author: {LONG_WORD}
---

A word too long for any line: {LONG_WORD} and more text after it.

An address written out as text, as a web page copied into an article often has it:
{LONG_URL}

The same as a link: <{LONG_URL}>, and in code: `{LONG_WORD}`.

| Name | Value |
| --- | --- |
| {LONG_WORD} | {LONG_URL} |

> {LONG_WORD}
"""

# Every element the article markup can produce, so that each styled element is checked
# in both colour schemes, not only those the example happens to use.
EVERY_ELEMENT_ARTICLE = """\
---
title: Every element an article can hold
author: The editors
date: 2026-11-21
url: /news/every-element
summary: A standfirst in italics, then each kind of block the template styles.
---

A paragraph with **bold**, *italic*, `code` and [a link](https://example.org/).

### A third-level heading

#### A fourth-level heading

##### A fifth-level heading

###### A sixth-level heading

> A quotation, set in italics with a rule on its left.

<blockquote>A quotation in HTML, its text straight inside the blockquote.</blockquote>

- a list item
- another, with [a link](https://example.org/list)

1. a numbered item
2. and another

| Heading cell | Another |
| --- | --- |
| a data cell | with [a link](https://example.org/table) |

```
preformatted text
```
"""


@pytest.fixture(scope="module")
def long_words_email(tmp_path_factory: pytest.TempPathFactory) -> Path:
    issue_dir = copy_example(tmp_path_factory.mktemp("long-words") / "ws")
    add_article(issue_dir, "long-words.md", LONG_WORDS_ARTICLE)
    return build(issue_dir)


@pytest.fixture(scope="module")
def every_element_email(tmp_path_factory: pytest.TempPathFactory) -> Path:
    issue_dir = copy_example(tmp_path_factory.mktemp("every-element") / "ws")
    add_article(issue_dir, "every-element.md", EVERY_ELEMENT_ARTICLE)
    return build(issue_dir)


# The widest runs of text without a space as laid out, to name the culprit on failure.
_WIDEST_WORDS = r"""() => {
  const words = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const match of node.textContent.matchAll(/\S{15,}/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const widest = Math.max(0, ...Array.from(range.getClientRects(), (r) => r.width));
      words.push([Math.round(widest), match[0].slice(0, 40)]);
    }
  }
  return words.sort((a, b) => b[0] - a[0]).slice(0, 3);
}"""


@pytest.mark.parametrize("width", [375, 600])
def test_long_words_and_urls_wrap_instead_of_widening_the_email(
    browser: Any, long_words_email: Path, width: int
) -> None:
    page = open_email(browser, long_words_email, width)
    try:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        widest = page.evaluate(_WIDEST_WORDS)
    finally:
        page.context.close()
    assert scroll_width <= width, (
        f"the email is {scroll_width}px wide in a {width}px window (readers would scroll "
        "sideways); the widest unbroken runs of text:\n"
        + "\n".join(f"{px}px: {word}..." for px, word in widest)
    )


# For every visible element with text of its own: its text colour and the colour behind
# it (the first background up the tree that is not transparent, with any translucent
# ones on the way composited over it), as [r, g, b, a].
_TEXT_COLOURS = r"""() => {
  const rgba = (css) => {
    const n = (css.match(/[\d.]+/g) || []).map(Number);
    return n.length >= 3 ? [n[0], n[1], n[2], n.length > 3 ? n[3] : 1] : [0, 0, 0, 0];
  };
  const over = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] >= 1) break;
    }
    let result = [255, 255, 255, 1];
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    // A blocked image shows its alt text instead, as many mail programs do by default.
    const alt = el.tagName === 'IMG' && el.naturalWidth === 0 ? el.alt : '';
    const own = alt || Array.from(el.childNodes)
      .filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent).join('').replace(/[\s\u034f\u200c]+/g, ' ').trim();
    if (!own || el.getClientRects().length === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility !== 'visible' || Number(style.opacity) === 0) continue;
    found.push({
      element: `<${el.tagName.toLowerCase()}${el.className ? ` class="${el.className}"` : ''}>`,
      text: own.slice(0, 40),
      color: rgba(style.color),
      background: background(el),
      size: parseFloat(style.fontSize),
      bold: Number(style.fontWeight) >= 700,
    });
  }
  return found;
}"""


def _luminance(rgb: list[float]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour given as 0-255 channels."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: list[float], background: list[float]) -> float:
    """WCAG contrast ratio of a (possibly translucent) text colour over an opaque background."""
    alpha = foreground[3]
    text = [foreground[i] * alpha + background[i] * (1 - alpha) for i in range(3)]
    lighter, darker = sorted((_luminance(text), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_ratio_matches_wcag_examples() -> None:
    black, white = [0, 0, 0, 1], [255, 255, 255, 1]
    assert contrast_ratio(black, white) == pytest.approx(21)
    assert contrast_ratio(white, white) == pytest.approx(1)
    # #767676 on white is the lightest grey that passes AA: 4.54:1.
    assert contrast_ratio([118, 118, 118, 1], white) == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio([0, 0, 0, 0.5], white) == pytest.approx(
        contrast_ratio([127.5, 127.5, 127.5, 1], white)
    )


def _hex(colour: list[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in colour[:3])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_is_readable_in_light_and_dark_mode(
    browser: Any, every_element_email: Path, scheme: str
) -> None:
    page = open_email(browser, every_element_email, 600, scheme)
    try:
        texts = page.evaluate(_TEXT_COLOURS)
        page_background = page.evaluate(
            "getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number)"
        )
    finally:
        page.context.close()
    dark_page = _luminance(page_background) < 0.05
    assert dark_page == (scheme == "dark"), f"the {scheme} palette was not applied"
    assert len(texts) > 50, "too few texts found: did the page load?"
    unreadable = []
    for text in texts:
        large = text["size"] >= 24 or (text["size"] >= 18.66 and text["bold"])
        needed = LARGE_TEXT_RATIO if large else NORMAL_TEXT_RATIO
        ratio = contrast_ratio(text["color"], text["background"])
        if ratio < needed:
            unreadable.append(
                f"{text['element']} {text['text']!r}: {_hex(text['color'])} on "
                f"{_hex(text['background'])} is {ratio:.2f}:1, needs {needed}:1"
            )
    assert not unreadable, f"unreadable in {scheme} mode:\n" + "\n".join(unreadable)
