"""Addresses as people type them: one mailbox with a display name, and one key per person."""

from __future__ import annotations

import hashlib

import pytest

from newsletter.audience.addresses import (
    address_hash,
    address_hashes,
    address_key,
    normalize_address,
    parse_mailbox,
    same_address_key,
    unique_addresses,
)
from newsletter.errors import SubscriberError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana@example.org", ("", "ana@example.org")),
        ("  Ana@Example.ORG ", ("", "Ana@example.org")),
        ("<ana@example.org>", ("", "ana@example.org")),
        ("Zoë Ngata <zoe@example.org>", ("Zoë Ngata", "zoe@example.org")),
        ('"Lima, Ana" <ana@example.org>', ("Lima, Ana", "ana@example.org")),
        ("=?utf-8?q?Zo=C3=AB?= <zoe@example.org>", ("Zoë", "zoe@example.org")),
        ("José <josé@exämple.org>", ("José", "josé@exämple.org")),
        ("Ana <ana@xn--bcher-kva.de>", ("Ana", "ana@bücher.de")),
        ("ana@example.org (Ana)", ("", "ana@example.org")),
    ],
)
def test_one_mailbox(text: str, expected: tuple[str, str]) -> None:
    assert parse_mailbox(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Evil <a@b.co>, victim@example.org", "is 2 addresses; give one"),
        ("a@b.co, c@d.co", "is 2 addresses"),
        ("Evil <a@b.co> victim@example.org", "is not one address"),
        ("<a@b.co> <c@d.co>", "is not one address"),
        ("Friends: a@b.co, c@d.co;", "is a group of addresses"),
        ("undisclosed-recipients:;", "is a group of addresses"),
        ("Ana <ana@example.org", "is not one address"),
        ("Ana <>", "is not one address"),
        ("", "invalid address ''"),
        ("not an address", "invalid address 'not an address'"),
        ("Ana <not an address>", "is not one address"),
        ("Ana <ana@example>", "invalid address 'Ana <ana@example>'"),
        ("Ana\n<ana@example.org>", "line break or control code"),
        ("ana@example.org\r\nBcc: victim@example.org", "line break or control code"),
    ],
)
def test_anything_but_one_mailbox_is_refused_in_one_line(text: str, reason: str) -> None:
    with pytest.raises(SubscriberError) as info:
        parse_mailbox(text)
    message = str(info.value)
    assert reason in message
    assert repr(text) in message and "\n" not in message


def test_same_address_key_and_dedupe() -> None:
    assert same_address_key("ME@example.org", "me@EXAMPLE.org")
    assert not same_address_key("me@example.org", "you@example.org")
    assert unique_addresses(["ME@example.org", "you@example.org", "me@example.org"]) == [
        "ME@example.org",
        "you@example.org",
    ]


# --- one key per person ----------------------------------------------------------------------


def test_key_has_one_form_for_a_domain() -> None:
    key = address_key("user@bücher.de")
    assert key == "user@xn--bcher-kva.de"
    assert address_key("User@BÜCHER.DE") == key == address_key("USER@xn--BCHER-KVA.de")
    assert address_key(normalize_address("user@xn--bcher-kva.de")) == key


def test_key_lowers_the_local_part_without_casefolding() -> None:
    assert address_key("Straße@example.org") == "straße@example.org"
    assert not same_address_key("Straße@example.org", "strasse@example.org")
    assert same_address_key("STRASSE@example.org", "strasse@example.org")
    assert same_address_key("Jose\u0301@example.org", "josé@example.org")  # NFC


def test_key_never_raises_on_what_was_stored() -> None:
    assert address_key("no at sign") == "no at sign"
    assert address_key("a@[127.0.0.1]") == "a@[127.0.0.1]"
    assert address_key("a@" + "ü" * 70 + ".de") == "a@" + "ü" * 70 + ".de"


def test_hashes_include_the_forms_erased_before_schema_3() -> None:
    legacy = hashlib.sha256("user@bücher.de".encode()).hexdigest()  # casefold(), as typed
    typed = hashlib.sha256(b"user@xn--bcher-kva.de").hexdigest()  # typed in ASCII
    hashes = address_hashes("User@bücher.de")
    assert hashes[0] == address_hash("user@bücher.de")
    assert legacy in hashes and typed in hashes


def test_key_lowers_letter_by_letter() -> None:
    """str.lower() writes a final capital sigma as ς: AΣ@ and aσ@ would be two people."""
    assert same_address_key("AΣ@example.gr", "aσ@example.gr")
    assert address_key("ΑΛΕΞΗΣ@example.gr") == "αλεξησ@example.gr"
