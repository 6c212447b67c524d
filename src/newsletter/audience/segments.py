"""Segments: which subscribers, by tag, in a small language that is never SQL.

    news                    subscribers tagged "news"
    news and not staff      tagged news, not tagged staff
    (news or events) and local

`and` binds tighter than `or`; `not` tighter than both. Tags are words of letters, digits
and - _ . : and the parser turns them into bound parameters, so nothing a user types ever
becomes SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, and_, exists, not_, or_, select

from newsletter.config_checks import TAG
from newsletter.errors import SubscriberError
from newsletter.storage import subscriber_tags, subscribers

LONGEST = 500  # characters: what sends.segment holds
DEEPEST = 50  # levels of 'not' and brackets
_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9_.:-]+)")
_KEYWORDS = ("and", "or", "not")


@dataclass(frozen=True)
class Tag:
    name: str


@dataclass(frozen=True)
class Not:
    inner: Node


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Node, ...]


Node = Tag | Not | AllOf | AnyOf


def normalize_tag(text: str) -> str:
    """A tag as stored: lower-case; ValueError if it is not a valid tag."""
    tag = text.strip().lower()
    if not TAG.fullmatch(tag) or tag in _KEYWORDS:
        raise ValueError(f"{text!r} is not a tag (letters, digits, - _ . : up to 100)")
    return tag


def parse_segment(text: str) -> Node:
    """The segment as a tree; SubscriberError for anything that is not one."""
    if len(text) > LONGEST:
        raise SubscriberError(
            f"segment {_shown(text)} is {len(text)} characters; at most {LONGEST} fit"
        )
    tokens = _tokens(text)
    node, rest = _either(tokens, text, 0)
    if rest:
        raise SubscriberError(f"segment {_shown(text)}: unexpected {rest[0]!r}")
    return node


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise SubscriberError(
                f"segment {_shown(text)}: unexpected {text[position:].strip()[:10]!r}"
            )
        tokens.append(match.group(1))
        position = match.end()
    if not tokens:
        raise SubscriberError("the segment is empty: name a tag, e.g. --segment news")
    return tokens


def _either(tokens: list[str], text: str, depth: int) -> tuple[Node, list[str]]:
    """a or b or ...: `or` binds loosest."""
    return _joined("or", AnyOf, _both, tokens, text, depth)


def _both(tokens: list[str], text: str, depth: int) -> tuple[Node, list[str]]:
    """a and b and ...: tighter than `or`."""
    return _joined("and", AllOf, _not, tokens, text, depth)


def _joined(
    word: str,
    make: type[AllOf] | type[AnyOf],
    part: Callable[[list[str], str, int], tuple[Node, list[str]]],
    tokens: list[str],
    text: str,
    depth: int,
) -> tuple[Node, list[str]]:
    """Parts joined by `word`: one part alone, or `make` of them all."""
    node, tokens = part(tokens, text, depth)
    parts = [node]
    while tokens and tokens[0].lower() == word:
        node, tokens = part(tokens[1:], text, depth)
        parts.append(node)
    return (parts[0] if len(parts) == 1 else make(tuple(parts))), tokens


def _not(tokens: list[str], text: str, depth: int) -> tuple[Node, list[str]]:
    if not tokens:
        raise SubscriberError(f"segment {_shown(text)} ends too early")
    if depth >= DEEPEST:  # the parser and the SQL it becomes recurse once per level
        raise SubscriberError(
            f"segment {_shown(text)} nests 'not' and brackets more than {DEEPEST} deep; "
            "write it more simply"
        )
    head = tokens[0]
    if head.lower() == "not":
        inner, rest = _not(tokens[1:], text, depth + 1)
        return Not(inner), rest
    if head == "(":
        inner, rest = _either(tokens[1:], text, depth + 1)
        if not rest or rest[0] != ")":
            raise SubscriberError(f"segment {_shown(text)}: a '(' is never closed")
        return inner, rest[1:]
    if head == ")" or head.lower() in _KEYWORDS:
        raise SubscriberError(f"segment {_shown(text)}: expected a tag, found {head!r}")
    try:
        return Tag(normalize_tag(head)), tokens[1:]
    except ValueError as exc:
        raise SubscriberError(f"segment {_shown(text)}: {exc}") from exc


def tags_in(node: Node) -> set[str]:
    if isinstance(node, Tag):
        return {node.name}
    if isinstance(node, Not):
        return tags_in(node.inner)
    return set().union(*(tags_in(p) for p in node.parts))


def segment_clause(node: Node) -> ColumnElement[bool]:
    """A WHERE clause over `subscribers` selecting the segment's members."""
    if isinstance(node, Tag):
        return exists(
            select(subscriber_tags.c.tag).where(
                subscriber_tags.c.subscriber_id == subscribers.c.id,
                subscriber_tags.c.tag == node.name,
            )
        )
    if isinstance(node, Not):
        return not_(segment_clause(node.inner))
    if isinstance(node, AllOf):
        return and_(*(segment_clause(p) for p in node.parts))
    return or_(*(segment_clause(p) for p in node.parts))


def segment_filter(conn: Connection, text: str) -> ColumnElement[bool]:
    """The WHERE clause for a segment; a tag nobody has is an error, not an empty send."""
    node = parse_segment(text)
    known = set(conn.scalars(select(subscriber_tags.c.tag).distinct()))
    unknown = sorted(tags_in(node) - known)
    if unknown:
        raise SubscriberError(
            f"unknown segment: no subscriber has the tag {', '.join(map(repr, unknown))} "
            f"(tags in use: {', '.join(sorted(known)) or 'none'})"
        )
    return segment_clause(node)
