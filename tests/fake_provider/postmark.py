"""Postmark's POST /email/batch: a JSON array of up to 500 messages, one result per message.

https://postmarkapp.com/developer/user-guide/send-email-with-api/batch-emails
The batch answers 200 even when some of its messages failed, each with its ErrorCode
(https://postmarkapp.com/developer/api/overview#error-codes).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from fake_provider.wire import (
    KEYS,
    POSTMARK_TEST_TOKEN,
    Accepted,
    Refusal,
    addr,
    bad_address,
    check_schema,
    parse_json,
)

if TYPE_CHECKING:
    from fake_provider.server import FakeProvider

NAME = "postmark"
SCHEMA = "postmark-email-batch.json"


def matches(path: str) -> bool:
    return path == "/email/batch"


def error(status: int, message: str) -> Any:
    return {"ErrorCode": status, "Message": message}


def handle(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    token = headers.get("x-postmark-server-token")
    if token not in (KEYS["postmark"], POSTMARK_TEST_TOKEN):
        raise Refusal(
            401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}
        )
    if "application/json" not in headers.get("content-type", "") or (
        "application/json" not in headers.get("accept", "")
    ):
        raise Refusal(422, {"ErrorCode": 409, "Message": "JSON data required."})
    data = parse_json(body, error)
    if not isinstance(data, list):
        raise Refusal(422, {"ErrorCode": 402, "Message": "Invalid JSON: expected an array."})
    if len(data) > 500:
        raise Refusal(422, {"ErrorCode": 410, "Message": "Too many batch messages (max 500)."})
    check_schema(fake, NAME, data, error)
    results = []
    for item in data:
        to = str(item.get("To", ""))
        missing = [k for k in ("From", "To", "Subject") if not item.get(k)]
        headers_ok = all(
            isinstance(h, dict) and set(h) == {"Name", "Value"} for h in item.get("Headers", [])
        )
        if missing or not (item.get("HtmlBody") or item.get("TextBody")) or not headers_ok:
            results.append({"ErrorCode": 300, "Message": f"Invalid email request: {missing}"})
            continue
        if not isinstance(item.get("MessageStream"), str):
            results.append({"ErrorCode": 300, "Message": "MessageStream must be a stream id"})
            continue
        address = addr(to)
        if "inactive" in address:
            results.append(
                {
                    "ErrorCode": 406,
                    "Message": "You tried to send to recipient(s) "
                    "that have been marked as inactive.",
                    "To": to,
                }
            )
            continue
        if bad_address(address):
            results.append({"ErrorCode": 300, "Message": f"Invalid 'To' address: '{to}'."})
            continue
        message_id = str(uuid.uuid4())
        if token != POSTMARK_TEST_TOKEN:
            fake.record(
                Accepted(
                    "postmark",
                    address,
                    item["Subject"],
                    item.get("HtmlBody", ""),
                    item.get("TextBody", ""),
                    {h["Name"]: h["Value"] for h in item.get("Headers", [])},
                    message_id,
                )
            )
        results.append(
            {
                "ErrorCode": 0,
                "Message": "OK",
                "MessageID": message_id,
                "To": to,
                "SubmittedAt": "2026-11-26T12:00:00Z",
            }
        )
    return 200, results, {}
