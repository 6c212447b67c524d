"""JSON request bodies for a batch, with each issue's HTML and text escaped only once.

Encoding a 50 KB HTML body as a JSON string costs far more than personalizing it (the
text is mostly non-ASCII-safe punctuation that must be escaped), yet all but a few words
of it are the same for every recipient. The issue's parts are JSON-escaped once; each
message's body is then spliced from those bytes and its recipient's escaped values. The
result is byte for byte what orjson.dumps gives for the whole list.

Messages of one send share a letterhead (compose.message), so their whole items differ
only in a few values: To, Message-ID, the unsubscribe link and the fields. For them the
item is encoded once, with marks where those go (a `_Frame`), and each message is the
frame's bytes with its own values put in: no dict, no header list, no encoding of the
item per recipient. The frame is checked once against the plain way; should an adapter
ever make an item the marks cannot stand for, the plain way is used.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from newsletter.compose.message import Letterhead, Message
from newsletter.compose.personalize import FIELDS, Recipient, field_values, fill
from newsletter.compose.render import Rendered

Item = Callable[[Message, int], dict[str, Any]]

_HTML_MARK = "\x00html\x00"
_TEXT_MARK = "\x00text\x00"


def _escaped(text: str) -> bytes:
    """The JSON string for `text`, without its quotes."""
    return orjson.dumps(text)[1:-1]


class _Parts:
    """One issue's HTML and text, split at the recipient fields and pre-escaped."""

    def __init__(self, rendered: Rendered) -> None:
        self.rendered = rendered
        self.html = [_escaped(p) if i % 2 == 0 else p for i, p in enumerate(rendered.html_parts)]
        self.text = [_escaped(p) if i % 2 == 0 else p for i, p in enumerate(rendered.text_parts)]


class Splicer:
    """Encodes batches; remembers the parts of the last issue, and the frame of the last
    letterhead, it saw."""

    def __init__(self) -> None:
        self._parts: _Parts | None = None
        self._frame: _Frame | None = None

    def encode(
        self, batch: Sequence[Message], item: Item, html_key: str, text_key: str, fast: bool = True
    ) -> bytes:
        """orjson.dumps of the batch's items with their bodies, in one copy.

        `item` gives a message's fields without its bodies; the HTML and text go in under
        `html_key` and `text_key` (the last two keys), spliced from the issue's parts.
        `fast=False` when an item depends on more than its message (its index, say).
        """
        frame = self._frame_for(batch, item, html_key, text_key) if fast else None
        if frame is not None:
            pieces = [b"["]
            for n, message in enumerate(batch):
                if n:
                    pieces.append(b",")
                pieces += frame.fill(message)
            pieces.append(b"]")
            return b"".join(pieces)
        pieces = [b"["]
        for n, message in enumerate(batch):
            if n:
                pieces.append(b",")
            self._one(pieces, message, n, item, html_key, text_key)
        pieces.append(b"]")
        return b"".join(pieces)

    def _one(
        self, pieces: list[bytes], message: Message, n: int, item: Item, html: str, text: str
    ) -> None:
        """One item the plain way: its fields encoded, its bodies spliced in."""
        parts = self._parts_for(message.rendered)
        raw, escaped = field_values(message.recipient, parts.rendered.slots)
        # Each value JSON-escaped once, however often the issue uses its field.
        html_values = {f: _escaped(v) for f, v in escaped.items()}
        text_values = {f: _escaped(v) for f, v in raw.items()}
        fields = item(message, n)
        fields[html], fields[text] = _HTML_MARK, _TEXT_MARK
        before, _, rest = orjson.dumps(fields).partition(_QUOTED_HTML)
        middle, _, after = rest.partition(_QUOTED_TEXT)
        pieces += (before, b'"')
        _fill(pieces, parts.html, html_values)
        pieces += (b'"', middle, b'"')
        _fill(pieces, parts.text, text_values)
        pieces += (b'"', after)

    def _parts_for(self, rendered: Rendered) -> _Parts:
        parts = self._parts
        if parts is None or parts.rendered is not rendered:
            parts = self._parts = _Parts(rendered)
        return parts

    def _frame_for(
        self, batch: Sequence[Message], item: Item, html_key: str, text_key: str
    ) -> _Frame | None:
        letterhead = batch[0].letterhead
        if any(m.letterhead is not letterhead for m in batch):
            return None
        frame = self._frame
        keys = (html_key, text_key)
        if frame is None or frame.letterhead is not letterhead or frame.keys != keys:
            frame = self._frame = _Frame(letterhead, item, html_key, text_key)
            # Checked once against the plain way, byte for byte.
            plain: list[bytes] = []
            self._one(plain, batch[0], 0, item, html_key, text_key)
            if not frame.works or b"".join(frame.fill(batch[0])) != b"".join(plain):
                frame.works = False
        return frame if frame.works else None


# A mark in an encoded frame: "\u0000<what>\u0000" is how JSON writes "\x00<what>\x00", and
# no value of ours holds a NUL (control characters never reach the issue or a header).
_MARK = re.compile(rb"\\u0000([a-z]:[a-z0-9_.]+|[a-z]+)\\u0000")


def _mark(what: str) -> str:
    return f"\x00{what}\x00"


class _Frame:
    """One item of a send as encoded JSON, with holes for what differs per recipient.

    `template` holds literal bytes at the even indexes and hole names at the odd ones:
    to, id (Message-ID), url (the unsubscribe link), email, name, and h:<field> and
    t:<field> for the HTML-escaped and plain values of each field of the bodies and subject.
    """

    def __init__(self, letterhead: Letterhead, item: Item, html_key: str, text_key: str) -> None:
        self.letterhead = letterhead
        self.keys = (html_key, text_key)
        rendered = letterhead.rendered
        self.slots = rendered.slots
        recipient = Recipient(_mark("email"), _mark("name"), _mark("url"))
        sample = Message(letterhead, recipient, _mark("to"), _mark("id"))
        names = [*FIELDS, *(slot.key for slot in self.slots)]
        sample.__dict__["subject"] = letterhead.subject_prefix + fill(
            rendered.subject_parts, {name: _mark(f"t:{name}") for name in names}
        )
        fields = item(sample, 0)
        fields[html_key], fields[text_key] = _mark("b:html"), _mark("b:text")
        template: list[Any] = []
        for n, piece in enumerate(_MARK.split(orjson.dumps(fields))):
            hole = piece.decode() if n % 2 else ""
            if hole in ("b:html", "b:text"):
                parts = rendered.html_parts if hole == "b:html" else rendered.text_parts
                kind = "h:" if hole == "b:html" else "t:"
                for i, part in enumerate(parts):
                    template.append(kind + part if i % 2 else _escaped(part))
            elif n % 2:
                template.append(hole)
            else:
                template.append(piece)
        # Adjacent literals joined, so that literals and holes alternate.
        self.template: list[Any] = [b""]
        for piece in template:
            after_literal = isinstance(self.template[-1], bytes)
            if isinstance(piece, bytes) and after_literal:
                self.template[-1] += piece
                continue
            if not isinstance(piece, bytes) and not after_literal:
                self.template.append(b"")  # between two holes
            self.template.append(piece)
        if not isinstance(self.template[-1], bytes):
            self.template.append(b"")
        self.holes: list[str] = self.template[1::2]
        needed = set(self.holes)
        known = {*_PLAIN} | {k + n for k in ("h:", "t:") for n in names}
        self.works = needed <= known
        # What a message computes, each value once, in this order; `pick` then puts them
        # in the holes (a hole may repeat: the link is in the text and in the HTML).
        self.plain = [hole for hole in _PLAIN if hole in needed]
        self.fields = [
            (name, f"t:{name}" in needed, f"h:{name}" in needed)
            for name in names
            if f"t:{name}" in needed or f"h:{name}" in needed
        ]
        order = [*self.plain]
        for name, text_hole, html_hole in self.fields:
            order += [f"t:{name}"] * text_hole + [f"h:{name}"] * html_hole
        at = [order.index(hole) for hole in self.holes] if self.works else []
        self.pick: Callable[[list[bytes]], Sequence[bytes]] = (
            operator.itemgetter(*at) if len(at) > 1 else lambda values: [values[i] for i in at]
        )

    def fill(self, message: Message) -> list[bytes]:
        """The frame's pieces with this message's values in the holes."""
        raw, escaped = field_values(message.recipient, self.slots)
        values = [_escaped(_PLAIN[hole](message)) for hole in self.plain]
        for name, text_hole, html_hole in self.fields:
            value = raw[name]
            encoded = _escaped(value)
            if text_hole:
                values.append(encoded)
            if html_hole:
                html = escaped[name]
                values.append(encoded if html is value else _escaped(html))
        out = self.template[:]
        out[1::2] = self.pick(values)
        return out


_PLAIN: dict[str, Callable[[Message], str]] = {
    "to": lambda m: m.to,
    "id": lambda m: m.message_id,
    "url": lambda m: m.recipient.unsubscribe_url,
    "email": lambda m: m.recipient.email,
    "name": lambda m: m.recipient.name,
}


_QUOTED_HTML = orjson.dumps(_HTML_MARK)
_QUOTED_TEXT = orjson.dumps(_TEXT_MARK)


def _fill(pieces: list[bytes], parts: list[Any], values: dict[str, bytes]) -> None:
    for i, part in enumerate(parts):
        pieces.append(values[part] if i % 2 else part)
