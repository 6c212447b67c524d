"""Reading what a browser or a mailbox provider posts: forms and the one-click body.

Forms are parsed here, strictly: the body must be UTF-8, percent escapes must decode to
UTF-8, at most MAX_FIELDS fields, no uploaded files. Anything else is FormError, which the
pages answer with 400 and change nothing. The body's size is capped before this
(web.security.BodyCap).

RFC 8058's one-click POST carries `List-Unsubscribe=One-Click`; mailbox providers send it
form-encoded, as multipart/form-data, or as bare text with no type at all.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote_plus

from python_multipart.exceptions import FormParserError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

MAX_FIELDS = 40
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
ONE_CLICK = "list-unsubscribe=one-click"


class FormError(ValueError):
    """A form that cannot be read: the page answers 400 and changes nothing."""


Fields = dict[str, list[str]]


def parse_form(body: bytes) -> Fields:
    """An application/x-www-form-urlencoded body as {name: [values]}; FormError if malformed."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(str(exc)) from exc
    fields: Fields = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_form(request: Request) -> Fields:
    """The form a page posted, url-encoded (browsers) or multipart (some sites' forms)."""
    kind = content_type(request)
    if kind in (FORM, ""):
        return parse_form(await request.body())
    if kind != MULTIPART:
        raise FormError(f"a form cannot be {kind}")
    try:
        async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
            fields: Fields = {}
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    raise FormError("a form here takes no files")
                fields.setdefault(name, []).append(value)
            return fields
    except (MultiPartException, FormParserError, UnicodeDecodeError) as exc:
        raise FormError(str(exc)) from exc


def one_value(fields: Fields, name: str, longest: int) -> str:
    """The field's one value ("" when absent); FormError if given twice or too long."""
    values = fields.get(name, [])
    if len(values) > 1:
        raise FormError(f"{name} given {len(values)} times")
    value = values[0] if values else ""
    if len(value) > longest:
        raise FormError(f"{name} is longer than {longest} characters")
    return value


def is_one_click(body: bytes) -> bool:
    """Whether a POST body says List-Unsubscribe=One-Click (RFC 8058), in any of the shapes
    mailbox providers send it: form-encoded (escaped or not), multipart, or bare text."""
    text = body.decode("utf-8", "replace").lower()
    if ONE_CLICK in text:
        return True
    if "%" in text or "+" in text:
        if ONE_CLICK in unquote_plus(text):
            return True
    # multipart/form-data: the field's name in its headers, the value on its own line
    return 'name="list-unsubscribe"' in text and "one-click" in text
