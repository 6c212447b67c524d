"""Signed tokens: anything a link can carry ends in a payload or None, never an exception."""

from __future__ import annotations

import base64
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.delivery.tokens import read_unsubscribe_token, sign, unsubscribe_token, verify

SECRET = "a-test-signing-secret-0123456789"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_what_is_signed_verifies_and_nothing_else(payload: str) -> None:
    token = sign(payload, SECRET)
    assert verify(token, SECRET) == payload
    assert verify(token, SECRET + "x") is None
    assert token.isascii() and " " not in token  # it travels in a URL as it is


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_a_payload_or_none(text: str) -> None:
    assert verify(text, SECRET) is None or isinstance(verify(text, SECRET), str)
    found = read_unsubscribe_token(text, SECRET)
    assert found is None or (isinstance(found[0], int) and isinstance(found[1], str))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=2**63), st.text(min_size=1), st.data())
def test_tampering_never_yields_another_subscriber(
    ident: int, issue: str, data: st.DataObject
) -> None:
    token = unsubscribe_token(ident, issue, SECRET)
    assert read_unsubscribe_token(token, SECRET) == (ident, issue)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    tampered = token[:position] + data.draw(st.sampled_from("ABCabc019-_.")) + token[position + 1 :]
    # Refused, or (base64's unused trailing bits) the very same subscriber and issue.
    assert read_unsubscribe_token(tampered, SECRET) in (None, (ident, issue))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=200), st.text())
def test_the_signature_is_hmac_sha256_of_the_payload(secret: str, payload: str) -> None:
    """Tokens signed before the precomputed key states (and by anyone following the
    docstring) verify: the signature is RFC 2104 HMAC-SHA256, cut to 128 bits, for keys
    shorter and longer than SHA-256's 64-byte block."""
    body, signature = sign(payload, secret).split(".")
    expected = hmac.digest(secret.encode(), payload.encode(), "sha256")[:16]
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) == payload.encode()
