"""Properties of the audience's readers, over inputs Hypothesis makes up.

- import_csv, given any file: an ImportReport or a NewsletterError, never another
  exception; on an error (or a dry run) the database is exactly as it was.
- addresses: normalize_address, parse_mailbox and address_key give a result or say why
  not (ValueError, SubscriberError); normalizing twice changes nothing; a domain's case
  never changes the key.
- segments: any text parses to a tree or a SubscriberError; a generated expression selects
  in SQL exactly the subscribers Python's own evaluation of it selects.

SQLite only, one database per test module, put back after each example.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from newsletter.audience.addresses import address_key, normalize_address, parse_mailbox
from newsletter.audience.importing import ImportReport, import_csv
from newsletter.audience.segments import (
    AllOf,
    AnyOf,
    Node,
    Not,
    Tag,
    parse_segment,
    segment_filter,
)
from newsletter.audience.subscribers import add_subscriber, remove_subscriber
from newsletter.config import load_settings
from newsletter.errors import NewsletterError, SubscriberError
from newsletter.storage import (
    deliveries,
    open_engine,
    sends,
    subscriber_tags,
    subscribers,
    suppressions,
    transaction,
)

from conftest import REPO

PROPERTIES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _engine(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp(name)
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    engine = open_engine(load_settings(root, environ={}))
    yield engine
    engine.dispose()


# --- the CSV reader ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def list_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    yield from _engine(tmp_path_factory, "import")


def _seed(engine: Engine) -> None:
    """A list to import into: someone active, someone who left, someone erased."""
    with transaction(engine) as conn:
        for table in (subscriber_tags, deliveries, sends, subscribers, suppressions):
            conn.execute(delete(table))
    add_subscriber(engine, "ana@example.org", name="Ana", tags=["news"])
    add_subscriber(engine, "bo@example.org", name="Bo")
    remove_subscriber(engine, "bo@example.org")
    add_subscriber(engine, "cy@example.org")
    remove_subscriber(engine, "cy@example.org", erase=True)


def _snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            table.name: sorted(map(repr, conn.execute(select(table)).all()))
            for table in (subscribers, subscriber_tags, suppressions)
        }


HEADERS = ["email", "Email", "e-mail", "name", "tags", "status", "city", "=x", ""]
CELLS = st.one_of(
    st.sampled_from(
        [
            "ana@example.org",
            "ANA@EXAMPLE.ORG",
            "bo@example.org",
            "cy@example.org",
            "new@example.org",
            "zoë@bücher.de",
            "user@xn--bcher-kva.de",
            "bad@",
            "",
            "news;events",
            "bad tag!",
            "active",
            "unsubscribed",
            "gone",
            "'=1+1",
            "-Ana-",
            '"',
            '"quoted, comma"',
            "a\nb",
        ]
    ),
    st.text(alphabet="abc@.;,\"'\n\r\t =+-é\ufeff", max_size=12),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """Files shaped like CSV, with every way a cell or a line can go wrong."""
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    header = draw(st.lists(st.sampled_from(HEADERS), min_size=1, max_size=5))
    rows = draw(st.lists(st.lists(CELLS, max_size=6), max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
    return draw(st.sampled_from(["", "\ufeff"])) + newline.join(lines)


FILES = st.one_of(
    csv_texts().map(lambda text: text.encode("utf-8")),
    st.text(max_size=200).map(lambda text: text.encode("utf-8")),
    st.binary(max_size=200),
    csv_texts().map(lambda text: text.encode("utf-8", "replace")[:50] + b"\xff\xfe rest"),
)


@PROPERTIES
@given(
    data=FILES,
    skip_invalid=st.booleans(),
    dry_run=st.booleans(),
    encoding=st.sampled_from(["utf-8-sig", "latin-1", "utf-16", "no-such-codec"]),
)
@example(data=b'email,name\na@example.org,"Ann\nb@example.org,B\n', skip_invalid=True,
         dry_run=False, encoding="utf-8-sig")  # fmt: skip
def test_any_file_is_a_report_or_one_error_and_never_half_imported(
    list_engine: Engine,
    tmp_path: Path,
    data: bytes,
    skip_invalid: bool,
    dry_run: bool,
    encoding: str,
) -> None:
    _seed(list_engine)
    before = _snapshot(list_engine)
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    try:
        report = import_csv(
            list_engine, path, skip_invalid=skip_invalid, dry_run=dry_run, encoding=encoding
        )
    except NewsletterError as exc:
        assert "\n" not in str(exc) and str(exc)
        assert _snapshot(list_engine) == before
        return
    assert isinstance(report, ImportReport)
    counted = report.added + report.updated + report.unchanged + report.skipped + report.invalid
    assert counted == report.rows
    assert [p.line for p in report.problems] == sorted(p.line for p in report.problems)
    if dry_run:
        assert _snapshot(list_engine) == before
    else:
        assert len(_snapshot(list_engine)["subscribers"]) == 2 + report.added


# --- addresses ---------------------------------------------------------------------------------

LOCAL = st.text(alphabet="abcxyzABCXYZ019.+-_'=äöüßéİΣσ", min_size=1, max_size=12)
LABEL = st.text(alphabet="abcxyzABCXYZ019-äöüÉßΣ", min_size=1, max_size=10)
DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(LABEL, min_size=1, max_size=3),
    st.sampled_from(["org", "ORG", "de", "co.uk", "xn--p1ai", "рф", "example"]),
)
ADDRESSES = st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN),
    st.text(alphabet='ab@.<>",;:() \n\täöΣ=-', max_size=30),
    st.text(max_size=40),
)


@PROPERTIES
@given(ADDRESSES)
def test_normalizing_an_address_is_idempotent(text: str) -> None:
    try:
        address = normalize_address(text)
    except ValueError:
        return
    assert normalize_address(address) == address
    assert address_key(address) == address_key(normalize_address(address))
    assert address_key(address_key(address)) == address_key(address)
    assert parse_mailbox(address) == ("", address)


def _recase(text: str, flips: list[bool]) -> str:
    """`text` with the case of some letters changed, where that is reversible."""
    out = []
    for char, flip in zip(text, itertools.cycle(flips or [False]), strict=False):
        other = char.swapcase()
        out.append(other if flip and len(other) == 1 and other.swapcase() == char else char)
    return "".join(out)


@PROPERTIES
@given(ADDRESSES, st.lists(st.booleans(), min_size=1, max_size=8))
def test_a_domains_case_never_changes_the_key(text: str, flips: list[bool]) -> None:
    try:
        address = normalize_address(text)
    except ValueError:
        return
    local, _, domain = address.rpartition("@")
    assert address_key(f"{local}@{_recase(domain, flips)}") == address_key(address)
    assert address_key(f"{_recase(local, flips)}@{domain}") == address_key(address)


@PROPERTIES
@given(
    st.one_of(
        ADDRESSES,
        st.builds(lambda name, a: f"{name} <{a}>", st.text(max_size=15), ADDRESSES),
        st.builds(lambda a, b: f"{a}, {b}", ADDRESSES, ADDRESSES),
    )
)
def test_parse_mailbox_is_one_mailbox_or_one_error(text: str) -> None:
    try:
        name, address = parse_mailbox(text)
    except SubscriberError as exc:
        message = str(exc)
        assert "\n" not in message
        assert repr(text) in message or repr(text.strip()) in message
        return
    assert normalize_address(address) == address
    assert not any(c in name for c in "\r\n")
    assert parse_mailbox(address) == ("", address)


# --- segments ----------------------------------------------------------------------------------

TAGS = ("a", "b", "c", "d")
# Every combination of the tags: 16 subscribers, so every tag is in use.
PEOPLE = [frozenset(t for t, on in zip(TAGS, bits, strict=True) if on)
          for bits in itertools.product([False, True], repeat=len(TAGS))]  # fmt: skip


@pytest.fixture(scope="module")
def tagged_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    for engine in _engine(tmp_path_factory, "segments"):
        for n, tags in enumerate(PEOPLE):
            add_subscriber(engine, f"p{n}@example.org", tags=sorted(tags))
        yield engine


@PROPERTIES
@given(st.one_of(st.text(max_size=80), st.text(alphabet="()abcd notrAND ", max_size=80)))
def test_any_text_is_a_segment_or_one_error(text: str) -> None:
    try:
        node = parse_segment(text)
    except SubscriberError as exc:
        assert "\n" not in str(exc).replace("\\n", "")
        return
    assert isinstance(node, Tag | Not | AllOf | AnyOf)


def _trees() -> st.SearchStrategy[Node]:
    return st.recursive(
        st.sampled_from(TAGS).map(Tag),
        lambda inner: st.one_of(
            inner.map(Not),
            st.lists(inner, min_size=2, max_size=3).map(lambda parts: AllOf(tuple(parts))),
            st.lists(inner, min_size=2, max_size=3).map(lambda parts: AnyOf(tuple(parts))),
        ),
        max_leaves=8,
    )


def _text(node: Node, draw: st.DrawFn, loosest: int = 0) -> str:
    """The tree as a segment, brackets only where precedence needs them (or drawn)."""
    binding = 3 if isinstance(node, Tag | Not) else 2 if isinstance(node, AllOf) else 1
    if isinstance(node, Tag):
        text = draw(st.sampled_from([node.name, node.name.upper()]))
    elif isinstance(node, Not):
        text = f"{draw(st.sampled_from(['not', 'NOT', 'Not']))} {_text(node.inner, draw, 3)}"
    else:
        word = "and" if isinstance(node, AllOf) else "or"
        joiner = draw(st.sampled_from([f" {word} ", f"  {word.upper()}  "]))
        text = joiner.join(_text(part, draw, binding + 1) for part in node.parts)
    if binding < loosest or draw(st.booleans()) and draw(st.booleans()):
        text = draw(st.sampled_from([f"({text})", f"( {text} )"]))
    return text


def _holds(node: Node, tags: frozenset[str]) -> bool:
    if isinstance(node, Tag):
        return node.name in tags
    if isinstance(node, Not):
        return not _holds(node.inner, tags)
    if isinstance(node, AllOf):
        return all(_holds(p, tags) for p in node.parts)
    return any(_holds(p, tags) for p in node.parts)


@PROPERTIES
@given(st.data())
def test_a_segment_selects_what_python_says_it_means(tagged_engine: Engine, data: Any) -> None:
    tree = data.draw(_trees())
    text = _text(tree, data.draw)
    assume(len(text) <= 500)
    expected = {f"p{n}@example.org" for n, tags in enumerate(PEOPLE) if _holds(tree, tags)}
    with transaction(tagged_engine) as conn:
        where = segment_filter(conn, text)
        chosen = set(conn.scalars(select(subscribers.c.email).where(where)))
    assert chosen == expected, text
