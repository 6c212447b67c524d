"""Property tests for what the checks read from outside: colours in a template's CSS,
SpamAssassin's report, and any HTML a selector must point into."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from newsletter.checks.colours import contrast, hex_colour, parse_colour
from newsletter.checks.email import selector
from newsletter.checks.spam import parse_status

channel = st.integers(min_value=0, max_value=255)
rgb = st.tuples(channel, channel, channel)


@given(st.text())
def test_any_text_is_a_colour_or_none(text: str) -> None:
    colour = parse_colour(text)
    assert colour is None or all(0 <= c <= 255 for c in colour)


@given(rgb)
def test_colours_read_back_as_written(colour: tuple[int, int, int]) -> None:
    assert parse_colour(hex_colour(colour)) == colour
    assert parse_colour(hex_colour(colour).upper() + " !important") == colour
    assert parse_colour("rgb({}, {}, {})".format(*colour)) == colour


@given(rgb, rgb)
def test_contrast_is_symmetric_and_bounded(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    ratio = contrast(a, b)
    assert ratio == contrast(b, a)
    assert 1.0 <= ratio <= 21.0 + 1e-9
    assert contrast(a, a) == 1.0


@given(st.text())
def test_any_spamassassin_output_is_a_score_or_none(text: str) -> None:
    status = parse_status(text)
    assert status is None or isinstance(status.score, float)


scores = st.floats(min_value=-100, max_value=100, allow_nan=False).map(lambda f: round(f, 1))
test_names = st.lists(st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True), max_size=6)


@given(scores, scores, test_names, st.sampled_from(["\n", "\r\n"]))
def test_spamassassin_status_reads_back(
    score: float, required: float, tests: list[str], newline: str
) -> None:
    names = ",".join(tests)
    header = f"X-Spam-Status: No, score={score} required={required}{newline}\ttests={names}"
    output = f"Received: x{newline}{header}{newline}\tautolearn=no version=4.0.1{newline}{newline}"
    status = parse_status(output)
    assert status is not None
    assert (status.score, status.required, status.tests) == (score, required, names)


tags = st.sampled_from(["div", "p", "td", "span", "a", "table", "tr"])
classes = st.lists(st.sampled_from(["x", "y", "card", "body-1"]), max_size=2, unique=True)


def tree(draw: Any, depth: int) -> str:
    children = "".join(
        tree(draw, depth - 1) for _ in range(draw(st.integers(0, 3 if depth else 0)))
    )
    tag, names = draw(tags), draw(classes)
    attribute = f' class="{" ".join(names)}"' if names else ""
    return f"<{tag}{attribute}>{children}t</{tag}>"


@st.composite
def documents(draw: Any) -> str:
    return "<html><body>" + "".join(tree(draw, 3) for _ in range(draw(st.integers(1, 3))))


@settings(max_examples=60, deadline=None)
@given(documents(), st.data())
def test_a_selector_finds_its_element_alone(document: str, data: st.DataObject) -> None:
    root = lxml_html.document_fromstring(document)
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    element = data.draw(st.sampled_from(elements))
    assert root.cssselect(selector(element)) == [element]
