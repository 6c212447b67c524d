"""Resend's POST /emails/batch: up to 100 emails, an Idempotency-Key, permissive validation.

https://resend.com/docs/dashboard/emails/batch-sending
https://resend.com/docs/dashboard/emails/idempotency-keys
The same key with the same body returns the first answer instead of sending again; with
another body it is a 409. With x-batch-validation: permissive, the valid emails are queued
and the others listed by index.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from fake_provider.wire import KEYS, Accepted, Refusal, addr, bad_address, check_schema, parse_json

if TYPE_CHECKING:
    from fake_provider.server import FakeProvider

NAME = "resend"
SCHEMA = "resend-emails-batch.json"


def matches(path: str) -> bool:
    return path == "/emails/batch"


def error(status: int, message: str, name: str = "application_error") -> Any:
    return {"statusCode": status, "message": message, "name": name}


def handle(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    if not headers.get("authorization", "").startswith("Bearer "):
        raise Refusal(
            401, error(401, "Missing API key in the authorization header.", "missing_api_key")
        )
    if headers["authorization"] != f"Bearer {KEYS['resend']}":
        raise Refusal(403, error(403, "API key is invalid", "validation_error"))
    key = headers.get("idempotency-key")
    digest = hashlib.sha256(body).hexdigest()
    if key is not None:
        if not 1 <= len(key) <= 256:
            raise Refusal(
                400,
                error(
                    400, "Idempotency key must be 1 to 256 characters", "invalid_idempotency_key"
                ),
            )
        with fake.lock:
            earlier = fake.idempotency.get(key)
        if earlier is not None:
            if earlier[0] != digest:
                raise Refusal(
                    409,
                    error(
                        409,
                        "Same idempotency key used with a different request payload",
                        "invalid_idempotent_request",
                    ),
                )
            return earlier[1], json.loads(earlier[2]), {}
    data = parse_json(body, error)
    if not isinstance(data, list):
        raise Refusal(422, error(422, "expected an array", "validation_error"))
    if len(data) > 100:
        raise Refusal(
            422, error(422, "Too many emails: the batch limit is 100", "validation_error")
        )
    check_schema(fake, NAME, data, error)
    permissive = headers.get("x-batch-validation") == "permissive"
    ids, errors = [], []
    for index, item in enumerate(data):
        to = item["to"] if isinstance(item["to"], list) else [item["to"]]
        problem = None
        if len(to) > 50:
            problem = "to: at most 50 addresses"
        for address in to:
            domain = addr(address).rpartition("@")[2]
            if domain in ("example.com", "test.com"):
                problem = f"The {domain} domain is not allowed as a recipient"
            elif bad_address(addr(address)):
                problem = f"Invalid `to` field: {address}"
        if not (item.get("html") or item.get("text")):
            problem = "Missing `html` or `text` field"
        if problem:
            if not permissive:
                raise Refusal(422, error(422, problem, "validation_error"))
            errors.append({"index": index, "message": problem})
            continue
        ids.append(str(uuid.uuid4()))
    queued = iter(ids)
    for index, item in enumerate(data):
        if any(e["index"] == index for e in errors):
            continue
        email_id = next(queued)
        for address in item["to"] if isinstance(item["to"], list) else [item["to"]]:
            fake.record(
                Accepted(
                    "resend",
                    addr(address),
                    item["subject"],
                    item.get("html", ""),
                    item.get("text", ""),
                    dict(item.get("headers", {})),
                    email_id,
                )
            )
    answer: dict[str, Any] = {"data": [{"id": i} for i in ids]}
    if permissive:
        answer["errors"] = errors
    if key is not None:
        with fake.lock:
            fake.idempotency[key] = (digest, 200, json.dumps(answer).encode())
    return 200, answer, {}
