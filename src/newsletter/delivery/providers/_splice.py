"""JSON request bodies for a batch, with each issue's HTML and text escaped only once.

Encoding a 50 KB HTML body as a JSON string costs far more than personalizing it (the
text is mostly non-ASCII-safe punctuation that must be escaped), yet all but a few words
of it are the same for every recipient. The issue's parts are JSON-escaped once; each
message's body is then spliced from those bytes and its recipient's escaped values. The
result is byte for byte what orjson.dumps gives for the whole list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from newsletter.compose.message import Message
from newsletter.compose.personalize import field_values
from newsletter.compose.render import Rendered

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
    """Encodes batches; remembers the parts of the last issue it saw."""

    def __init__(self) -> None:
        self._parts: _Parts | None = None

    def encode(
        self,
        batch: Sequence[Message],
        item: Callable[[Message, int], dict[str, Any]],
        html_key: str,
        text_key: str,
    ) -> bytes:
        """orjson.dumps of the batch's items with their bodies, in one copy.

        `item` gives a message's fields without its bodies; the HTML and text go in under
        `html_key` and `text_key` (the last two keys), spliced from the issue's parts.
        """
        pieces: list[bytes] = [b"["]
        for n, message in enumerate(batch):
            parts = self._parts_for(message.rendered)
            raw, escaped = field_values(message.recipient, parts.rendered.slots)
            # Each value JSON-escaped once, however often the issue uses its field.
            html_values = {f: _escaped(v) for f, v in escaped.items()}
            text_values = {f: _escaped(v) for f, v in raw.items()}
            fields = item(message, n)
            fields[html_key], fields[text_key] = _HTML_MARK, _TEXT_MARK
            before, _, rest = orjson.dumps(fields).partition(_QUOTED_HTML)
            middle, _, after = rest.partition(_QUOTED_TEXT)
            if n:
                pieces.append(b",")
            pieces += (before, b'"')
            _fill(pieces, parts.html, html_values)
            pieces += (b'"', middle, b'"')
            _fill(pieces, parts.text, text_values)
            pieces += (b'"', after)
        pieces.append(b"]")
        return b"".join(pieces)

    def _parts_for(self, rendered: Rendered) -> _Parts:
        parts = self._parts
        if parts is None or parts.rendered is not rendered:
            parts = self._parts = _Parts(rendered)
        return parts


_QUOTED_HTML = orjson.dumps(_HTML_MARK)
_QUOTED_TEXT = orjson.dumps(_TEXT_MARK)


def _fill(pieces: list[bytes], parts: list[Any], values: dict[str, bytes]) -> None:
    for i, part in enumerate(parts):
        pieces.append(values[part] if i % 2 else part)
