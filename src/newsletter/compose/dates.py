"""Dates as editors and websites write them: "20 Oct 17", "20 October 2017", "2017-10-20".

Articles keep the forms their websites give out. A date typed on the command line must not
be numeric with "/" or ".": 12/01/2026 is the 12th of January to some and the 1st of
December to others, so it is refused instead of guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_FORMATS = ("%Y-%m-%d", "%d %b %y", "%d %B %Y", "%d %b %Y", "%d %B %y", "%B %d, %Y",
            "%b %d, %Y", "%d/%m/%Y")  # fmt: skip
# What a plain-text article's date line looks like, before it is parsed.
LOOKS_LIKE_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}(st|nd|rd|th)? [A-Za-z]{3,9}\.?,? \d{2,4}|"
    r"[A-Za-z]{3,9}\.? \d{1,2}(st|nd|rd|th)?,? \d{4}|\d{1,2}/\d{1,2}/\d{4})$"
)
_NUMERIC = re.compile(r"^\s*\d{1,4}\s*[/.]\s*\d{1,2}\s*[/.]\s*\d{1,4}\s*$")
WRITTEN_FORMS = "2026-12-01, 1 December 2026, Dec 1, 2026 or 1 Dec 26"


def parse_date(value: Any) -> dt.date:
    """Accept a YAML/TOML date or text such as "20 Oct 17", "20 October 2017", "2017-10-20"."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date such as 2017-10-20")
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", value.strip()).replace(".", "")
    text = re.sub(r"\s+", " ", text)
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"{value!r} is not a date such as 2017-10-20 or 20 Oct 17")


def parse_given_date(text: str) -> dt.date:
    """A date typed by an editor: ISO or written out; numeric ones with / or . are refused."""
    if _NUMERIC.match(text):
        raise ValueError(
            f"{text!r} is ambiguous (day and month could be either way round); "
            f"write it as {WRITTEN_FORMS}"
        )
    try:
        return parse_date(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date; write it as {WRITTEN_FORMS}") from exc
