"""Personal fields: a subscriber's own CSV columns (and name, email) in an issue.

One syntax everywhere an editor writes, the Jinja2 expression the templates already use:

    {{ subscriber.city }}                         the value, or nothing
    {{ subscriber.city | default("your area") }}  the value, or the default

In templates Jinja2 evaluates it (`subscriber` in the context, our own `default` filter);
in the intro, articles, subject and preheader the same text is parsed by `parse` below.
Either way it becomes a slot token (compose.personalize) that sending fills for each
recipient, in the same split-and-join as name and unsubscribe link: no re-render.

What makes it safe although articles may come from any web page (issue 9, §4): outside
the templates a field is filled only where it stands as a word of its own in text: in a
text node of the HTML (never an attribute, so never an href or an image URL), not glued
to a URL or another word, and the unsubscribe link is not a field there at all. The
value is HTML-escaped in the HTML and kept plain (one line) in the text and subject. So
the most hostile article can show a reader their own city, to them alone; it can build no
link or image that carries anyone's data anywhere. Anything else stays literal text.

Field names are the CSV columns lower-cased, other characters as "_": the column
"Membership level" is `subscriber.membership_level`. A build checks every name it uses
against the fields the list's subscribers have, in the database (when there is one yet).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2.filters
from markupsafe import Markup
from sqlalchemy import text
from sqlalchemy.engine import make_url

from newsletter.compose.personalize import BUILT_IN, slot_token
from newsletter.config import Settings
from newsletter.errors import ContentError
from newsletter.files import shown
from newsletter.storage import engine_url, open_engine, transaction
from newsletter.workspace import default_templates_dir

if TYPE_CHECKING:
    from newsletter.compose.issue import Issue
    from newsletter.compose.render import Rendered


@lru_cache(maxsize=1024)
def field_key(column: str) -> str:
    """The name a column goes by in an issue: lower case, other characters as "_"."""
    return re.sub(r"[^0-9a-z]+", "_", column.lower()).strip("_")


def personal(fields: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A subscriber's stored fields keyed by field_key, as compose.personalize wants them
    (which makes each value it uses text: a JSON number is shown as its digits).

    Called for every recipient of a send: the columns are nearly always the same ones, so
    their keys are worked out once per set of columns, and fields whose columns already
    have their issue names are passed on as they are.
    """
    if not fields:
        return {}
    keys = _keys(tuple(fields))
    if keys is None:
        return fields
    return dict(zip(keys, fields.values(), strict=True))


@lru_cache(maxsize=256)
def _keys(columns: tuple[str, ...]) -> tuple[str, ...] | None:
    """The field_key of each column; None when every column is its own key already."""
    keys = tuple(field_key(c) for c in columns)
    return None if keys == columns else keys


# --- the syntax in the intro, articles, subject and preheader ------------------------------

# {{ subscriber.NAME }} or {{ subscriber.NAME | default("TEXT") }} ('TEXT' too); not glued
# to what comes before or after it, so never a part of a URL or of another word.
SYNTAX = re.compile(
    r"(?<![\w/?=&%:#@.~+\-])"
    r"\{\{\s*subscriber\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:\|\s*(?:default|d)\s*\(\s*(?:\"(?P<dq>[^\"\n]*)\"|'(?P<sq>[^'\n]*)')\s*\)\s*)?"
    r"\}\}"
    r"(?![\w/?=&%#@~+\-]|\.\w)"
)


@dataclass(frozen=True)
class Use:
    """One use of a personal field in text: where it is, its name and its default."""

    start: int
    end: int
    name: str
    default: str


def parse(text: str, unescape: Callable[[str], str] = str) -> list[Use]:
    """Every well-formed, free-standing field in `text`, in order."""
    uses = []
    for match in SYNTAX.finditer(text):
        default = match.group("dq") if match.group("dq") is not None else match.group("sq")
        uses.append(
            Use(match.start(), match.end(), field_key(match["name"]), unescape(default or ""))
        )
    return uses


def in_text(text: str, nonce: str) -> str:
    """Plain text (a subject, a preheader) with its fields as slot tokens."""
    return _replace(text, nonce, parse(text))


def in_html(fragment: str, nonce: str) -> str:
    """Sanitized HTML (an article, the intro) with the fields in its text nodes as tokens;
    tags and attribute values are left exactly as they are."""
    if "{{" not in fragment:
        return fragment
    out = []
    for piece in _TAGS.split(fragment):
        if piece.startswith("<"):
            out.append(piece)
        else:
            out.append(_replace(piece, nonce, parse(piece, html.unescape)))
    return "".join(out)


# A tag, its quoted attribute values included (the sanitizer writes them double-quoted);
# the capture keeps the tags in split()'s result.
_TAGS = re.compile(r"(<[^<>\"']*(?:(?:\"[^\"]*\"|'[^']*')[^<>\"']*)*>)")


def _replace(text: str, nonce: str, uses: list[Use]) -> str:
    out, at = [], 0
    for use in uses:
        out += [text[at : use.start], slot_token(nonce, use.name, use.default)]
        at = use.end
    return "".join(out) + text[at:] if uses else text


# --- the templates ---------------------------------------------------------------------------


class FieldSlot(Markup):
    """What `subscriber.<name>` gives a template: the slot token, safe to print as it is."""

    field_name: str
    nonce: str

    @classmethod
    def make(cls, nonce: str, name: str, default: str = "") -> FieldSlot:
        slot = cls(slot_token(nonce, name, default))
        slot.field_name, slot.nonce = name, nonce
        return slot


class Subscriber:
    """`subscriber` in the templates: any field, as `subscriber.city` or
    `subscriber["Membership level"]`; the build checks the names against the list."""

    def __init__(self, nonce: str) -> None:
        self._nonce = nonce

    def __getattr__(self, name: str) -> FieldSlot:
        if name.startswith("_"):
            raise AttributeError(name)
        return FieldSlot.make(self._nonce, field_key(name))

    def __getitem__(self, name: str) -> FieldSlot:
        return FieldSlot.make(self._nonce, field_key(str(name)))


def default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja2's `default`, which for a personal field sets the value a subscriber without
    one gets (Jinja2's own would see a defined value and never apply)."""
    if isinstance(value, FieldSlot):
        return FieldSlot.make(value.nonce, value.field_name, str(default_value))
    return jinja2.filters.do_default(value, default_value, boolean)


# --- the build's check -----------------------------------------------------------------------


def check_issue(settings: Settings, issue: Issue, rendered: Rendered) -> list[str]:
    """The build's check of the fields an issue uses (see check_known); its warnings."""
    templates = [
        folder / name
        for name in rendered.templates
        for folder in (settings.templates_dir, default_templates_dir())
    ]
    return check_known(settings, (s.name for s in rendered.slots), [*issue.sources, *templates])


def check_known(settings: Settings, used: Iterable[str], sources: Iterable[Path]) -> list[str]:
    """Refuse a field no subscriber has (ContentError naming it and where it is used).

    The names come from the database: when there is none yet (no SQLite file), nothing
    can be checked, and a warning says so instead.
    """
    names = sorted({n for n in used if n not in BUILT_IN})
    if not names:
        return []
    known = known_fields(settings)
    if known is None:
        return [
            f"no subscriber list yet: personal fields {', '.join(names)} are not checked "
            "(each is filled with its default until subscribers have it)"
        ]
    unknown = [n for n in names if n not in known]
    if unknown:
        where = _where(unknown[0], sources)
        have = ", ".join(sorted(known | set(BUILT_IN)))
        raise ContentError(
            f"{where}subscriber field '{unknown[0]}' is used, but no subscriber has it "
            f"(fields: {have}); check the spelling, or import a CSV with that column"
        )
    return []


def known_fields(settings: Settings) -> set[str] | None:
    """The field_key of every custom field any subscriber has; None without a database."""
    if not has_database(settings):
        return None
    engine = open_engine(settings)
    try:
        with transaction(engine) as conn:
            sql = _FIELD_NAMES[conn.dialect.name]
            return {field_key(str(name)) for (name,) in conn.execute(text(sql))}
    finally:
        engine.dispose()


def has_database(settings: Settings) -> bool:
    """Whether the list's database exists yet (a PostgreSQL one always does)."""
    url = make_url(engine_url(settings))
    if url.get_backend_name() != "sqlite":
        return True
    path = url.database or ""
    return path not in ("", ":memory:") and Path(path).exists()


_FIELD_NAMES = {
    "sqlite": "SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.fields) AS j",
    "postgresql": "SELECT DISTINCT json_object_keys(fields) FROM subscribers",
}


def _where(name: str, sources: Iterable[Path]) -> str:
    """'path:line: ' of the first source that names the field, or ''."""
    pattern = re.compile(r"subscriber(?:\.\s*|\[\s*[\"'])([^\"'\s|}\]]+)")
    for path in sources:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for number, line in enumerate(lines, 1):
            if any(field_key(m) == name for m in pattern.findall(line)):
                return f"{shown(path)}:{number}: "
    return ""
