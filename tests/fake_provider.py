"""A fake email provider: a real HTTP server on 127.0.0.1 that speaks four providers' APIs.

It checks requests the way each provider documents them (auth, required fields, batch
limits, and where ../shared/provider-specs has an official schema, the JSON body against
it) and answers in each provider's shapes, including per-item errors. Faults can be queued
to make the next requests answer 429 with Retry-After, 500, slowly, with HTML, or by
dropping the connection mid-answer. Every message it accepts is recorded per recipient,
with the provider's own merge fields filled in, so tests count what recipients would get.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPECS = Path(__file__).resolve().parents[2] / "shared" / "provider-specs"
KEYS = {
    "postmark": "pm-server-token-5ecret",
    "sendgrid": "SG.sendgrid-5ecret-key",
    "mailgun": "key-mailgun-5ecret",
    "resend": "re_resend_5ecret_key",
}
MAILGUN_DOMAIN = "mg.example.org"
POSTMARK_TEST_TOKEN = "POSTMARK_API_TEST"


@dataclass
class Accepted:
    provider: str
    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    provider_id: str


@dataclass
class Seen:
    provider: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0


def _validators() -> dict[str, Any]:
    """JSON Schema validators for request bodies, from the official specs when present."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError:  # pragma: no cover - jsonschema is a test dependency
        return {}
    found: dict[str, Any] = {}
    wanted = {
        "sendgrid": (
            "sendgrid/tsg_mail_v3.json",
            "#/components/requestBodies/PostMailSend/content/application~1json/schema",
        ),
        "postmark": (
            "postmark/postmark-server-oas3-apisguru-2019.json",
            "#/paths/~1email~1batch/post/requestBody/content/application~1json/schema",
        ),
        "resend": (
            "resend/resend.json",
            "#/paths/~1emails~1batch/post/requestBody/content/application~1json/schema",
        ),
    }
    for name, (path, pointer) in wanted.items():
        spec_file = SPECS / path
        if spec_file.is_file():
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
            schema = {
                "$ref": pointer,
                "components": spec.get("components", {}),
                "paths": spec["paths"],
            }
            found[name] = Draft202012Validator(schema)
    return found


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or a dropped answer is part of the test, not news."""


class FakeProvider:
    def __init__(self) -> None:
        self.accepted: list[Accepted] = []
        self.seen: list[Seen] = []
        self.faults: list[str] = []
        self.validators = _validators()
        self.schema_checked: set[str] = set()
        self.idempotency: dict[str, tuple[str, int, bytes]] = {}
        self.slow_seconds = 2.0
        self.delay = 0.0  # seconds every request waits before it is handled
        self.retry_after = "1"
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        """Forget everything, once requests still being answered (slow ones) are done."""
        deadline = time.monotonic() + 10
        while any(seen.status == 0 for seen in self.seen) and time.monotonic() < deadline:
            time.sleep(0.02)
        with self.lock:
            self.accepted.clear()
            self.seen.clear()
            self.faults.clear()
            self.idempotency.clear()
            self.delay = 0.0
            self.retry_after = "1"
            self.slow_seconds = 2.0

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def record(self, item: Accepted) -> None:
        with self.lock:
            self.accepted.append(item)

    def recipients(self) -> list[str]:
        return [a.to for a in self.accepted]


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def _handler(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body must not wait for an ACK

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            provider = _route(self.path)
            seen = Seen(provider, self.path, headers, body)
            with fake.lock:
                fake.seen.append(seen)
            fault = fake.next_fault()  # "ok" takes a turn and changes nothing
            if fake.delay:
                time.sleep(fake.delay)
            try:
                if fault == "slow":
                    time.sleep(fake.slow_seconds)
                if fault == "429":
                    raise _Reply(
                        429,
                        _error(provider, 429, "rate limit exceeded"),
                        {"Retry-After": fake.retry_after},
                    )
                if fault == "500":
                    raise _Reply(500, _error(provider, 500, "internal error"))
                if fault == "html":
                    raise _Reply(200, "<html><body>Welcome to our proxy</body></html>")
                if fault == "502-html":
                    raise _Reply(502, "<html><body>Bad gateway</body></html>")
                handle = {
                    "postmark": _postmark,
                    "sendgrid": _sendgrid,
                    "mailgun": _mailgun,
                    "resend": _resend,
                }.get(provider)
                if handle is None:
                    raise _Reply(404, {"message": f"no such endpoint {self.path}"})
                status, answer, extra = handle(fake, self.path, headers, body)
            except _Reply as reply:
                status, answer, extra = reply.status, reply.body, reply.headers
            payload = (
                answer
                if isinstance(answer, bytes)
                else (answer.encode() if isinstance(answer, str) else json.dumps(answer).encode())
            )
            kind = "text/html" if isinstance(answer, str) else "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for name, value in extra.items():
                self.send_header(name, value)
            seen.status = status
            if fault == "drop":
                # The request was processed; the answer never arrives whole.
                self.send_header("Content-Length", str(len(payload) + 100))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    return Handler


def _route(path: str) -> str:
    if path == "/email/batch":
        return "postmark"
    if path == "/v3/mail/send":
        return "sendgrid"
    if re.fullmatch(r"/v3/[^/]+/messages", path):
        return "mailgun"
    if path == "/emails/batch":
        return "resend"
    return "unknown"


def _error(provider: str, status: int, message: str) -> Any:
    if provider == "postmark":
        return {"ErrorCode": status, "Message": message}
    if provider == "sendgrid":
        return {"errors": [{"message": message, "field": None, "help": None}]}
    if provider == "resend":
        return {"statusCode": status, "message": message, "name": "application_error"}
    return {"message": message}


def _json(body: bytes, provider: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise _Reply(400, _error(provider, 400, "body is not valid JSON")) from None


def _check_schema(fake: FakeProvider, provider: str, data: Any) -> None:
    validator = fake.validators.get(provider)
    if validator is None:
        return
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path)
        raise _Reply(400, _error(provider, 400, f"schema: {where}: {errors[0].message}"))
    fake.schema_checked.add(provider)


def _bad_address(address: str) -> bool:
    return "invalid" in address or not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address)


# --- Postmark ------------------------------------------------------------------------------


def _postmark(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    token = headers.get("x-postmark-server-token")
    if token not in (KEYS["postmark"], POSTMARK_TEST_TOKEN):
        raise _Reply(
            401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}
        )
    if "application/json" not in headers.get("content-type", "") or (
        "application/json" not in headers.get("accept", "")
    ):
        raise _Reply(422, {"ErrorCode": 409, "Message": "JSON data required."})
    data = _json(body, "postmark")
    if not isinstance(data, list):
        raise _Reply(422, {"ErrorCode": 402, "Message": "Invalid JSON: expected an array."})
    if len(data) > 500:
        raise _Reply(422, {"ErrorCode": 410, "Message": "Too many batch messages (max 500)."})
    _check_schema(fake, "postmark", data)
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
        address = _addr(to)
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
        if _bad_address(address):
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


def _addr(text: str) -> str:
    match = re.search(r"<([^>]+)>\s*$", text)
    return (match.group(1) if match else text).strip()


# --- SendGrid ------------------------------------------------------------------------------


def _sendgrid(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    if headers.get("authorization") != f"Bearer {KEYS['sendgrid']}":
        raise _Reply(
            401,
            _error(
                "sendgrid", 401, "The provided authorization grant is invalid, expired, or revoked"
            ),
        )
    data = _json(body, "sendgrid")
    _check_schema(fake, "sendgrid", data)
    people = data.get("personalizations", [])
    if not 1 <= len(people) <= 1000:
        raise _Reply(400, _error("sendgrid", 400, "personalizations: 1 to 1000 items"))
    content = data.get("content", [])
    if [c.get("type") for c in content][:1] != ["text/plain"]:
        raise _Reply(400, _error("sendgrid", 400, "text/plain must be the first content type"))
    seen: set[str] = set()
    errors = []
    for n, person in enumerate(people):
        for m, to in enumerate(person.get("to", [])):
            email = to.get("email", "").lower()
            if email in seen:
                errors.append(
                    {
                        "message": "Each email address in the personalization block "
                        "should be unique",
                        "field": f"personalizations.{n}.to.{m}.email",
                    }
                )
            if _bad_address(email):
                errors.append(
                    {
                        "message": "Does not contain a valid address.",
                        "field": f"personalizations.{n}.to.{m}.email",
                        "help": None,
                    }
                )
            seen.add(email)
    if len(seen) > 1000:
        errors.append({"message": "too many recipients", "field": "personalizations"})
    if errors:
        raise _Reply(400, {"errors": errors})
    sandbox = data.get("mail_settings", {}).get("sandbox_mode", {}).get("enable") is True
    message_id = uuid.uuid4().hex[:22]
    if sandbox:
        return 200, b"", {"X-Message-Id": message_id}
    texts = {c["type"]: c["value"] for c in content}
    for person in people:
        subs = person.get("substitutions", {})
        for to in person["to"]:
            fake.record(
                Accepted(
                    "sendgrid",
                    to["email"],
                    _subst(person.get("subject", data["subject"]), subs),
                    _subst(texts.get("text/html", ""), subs),
                    _subst(texts.get("text/plain", ""), subs),
                    {**data.get("headers", {}), **person.get("headers", {})},
                    message_id,
                )
            )
    return 202, b"", {"X-Message-Id": message_id}


def _subst(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


# --- Mailgun -------------------------------------------------------------------------------


def _form(headers: dict[str, str], body: bytes) -> list[tuple[str, str]]:
    kind = headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise _Reply(400, {"message": "expected multipart/form-data"})
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {kind}\r\n\r\n".encode() + body
    )
    fields = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields.append((str(name), payload.decode("utf-8")))
    return fields


def _mailgun(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    expected = "Basic " + base64.b64encode(f"api:{KEYS['mailgun']}".encode()).decode()
    if headers.get("authorization") != expected:
        raise _Reply(401, "Forbidden")
    if path != f"/v3/{MAILGUN_DOMAIN}/messages":
        raise _Reply(404, {"message": "Domain not found"})
    fields = _form(headers, body)
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name, []).append(value)
    for required in ("from", "to", "subject"):
        if not values.get(required):
            raise _Reply(400, {"message": f"'{required}' parameter is missing"})
    if not (values.get("html") or values.get("text")):
        raise _Reply(400, {"message": "Need at least one of 'text' or 'html' parameters specified"})
    recipients = values["to"]
    if len(recipients) > 1000:
        raise _Reply(400, {"message": "Too many recipients: batch sending is limited to 1000"})
    raw_vars = values.get("recipient-variables", [None])[0]
    if len(recipients) > 1 and raw_vars is None:
        # Real Mailgun would send, showing every recipient all the others' addresses.
        raise _Reply(400, {"message": "fake: several 'to' without recipient-variables"})
    variables = json.loads(raw_vars) if raw_vars else {}
    options = sum(len(v) for k, vs in values.items() if k[:2] in ("o:", "h:", "v:") for v in vs)
    if options > 16 * 1024:
        raise _Reply(
            400,
            {
                "message": "Send options (parameters starting with o:, h:, or v:) "
                "are limited to 16KB total"
            },
        )
    for to in recipients:
        if _bad_address(_addr(to)):
            raise _Reply(
                400, {"message": "to parameter is not a valid address. please check documentation"}
            )
    message_id = f"<{uuid.uuid4().hex}@{MAILGUN_DOMAIN}>"
    if values.get("o:testmode") != ["yes"]:
        for to in recipients:
            address = _addr(to)
            mine = variables.get(address, {})

            def fill(text: str, mine: dict[str, str] = mine) -> str:
                return re.sub(
                    r"%recipient\.([^%]+)%", lambda m: str(mine.get(m.group(1), "")), text
                )

            fake.record(
                Accepted(
                    "mailgun",
                    address,
                    fill(values["subject"][0]),
                    fill(values.get("html", [""])[0]),
                    fill(values.get("text", [""])[0]),
                    {k[2:]: fill(v[0]) for k, v in values.items() if k.startswith("h:")},
                    message_id,
                )
            )
    return 200, {"id": message_id, "message": "Queued. Thank you."}, {}


# --- Resend --------------------------------------------------------------------------------


def _resend(fake: FakeProvider, path: str, headers: dict[str, str], body: bytes) -> Any:
    if not headers.get("authorization", "").startswith("Bearer "):
        raise _Reply(
            401,
            {
                "statusCode": 401,
                "message": "Missing API key in the authorization header.",
                "name": "missing_api_key",
            },
        )
    if headers["authorization"] != f"Bearer {KEYS['resend']}":
        raise _Reply(
            403, {"statusCode": 403, "message": "API key is invalid", "name": "validation_error"}
        )
    key = headers.get("idempotency-key")
    digest = hashlib.sha256(body).hexdigest()
    if key is not None:
        if not 1 <= len(key) <= 256:
            raise _Reply(
                400,
                {
                    "statusCode": 400,
                    "message": "Idempotency key must be 1 to 256 characters",
                    "name": "invalid_idempotency_key",
                },
            )
        with fake.lock:
            earlier = fake.idempotency.get(key)
        if earlier is not None:
            if earlier[0] != digest:
                raise _Reply(
                    409,
                    {
                        "statusCode": 409,
                        "message": "Same idempotency key used with a different request payload",
                        "name": "invalid_idempotent_request",
                    },
                )
            return earlier[1], json.loads(earlier[2]), {}
    data = _json(body, "resend")
    if not isinstance(data, list):
        raise _Reply(
            422, {"statusCode": 422, "message": "expected an array", "name": "validation_error"}
        )
    if len(data) > 100:
        raise _Reply(
            422,
            {
                "statusCode": 422,
                "message": "Too many emails: the batch limit is 100",
                "name": "validation_error",
            },
        )
    _check_schema(fake, "resend", data)
    permissive = headers.get("x-batch-validation") == "permissive"
    ids, errors = [], []
    for index, item in enumerate(data):
        to = item["to"] if isinstance(item["to"], list) else [item["to"]]
        problem = None
        if len(to) > 50:
            problem = "to: at most 50 addresses"
        for address in to:
            domain = _addr(address).rpartition("@")[2]
            if domain in ("example.com", "test.com"):
                problem = f"The {domain} domain is not allowed as a recipient"
            elif _bad_address(_addr(address)):
                problem = f"Invalid `to` field: {address}"
        if not (item.get("html") or item.get("text")):
            problem = "Missing `html` or `text` field"
        if problem:
            if not permissive:
                raise _Reply(
                    422, {"statusCode": 422, "message": problem, "name": "validation_error"}
                )
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
                    _addr(address),
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


def running() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()


__all__ = ["KEYS", "MAILGUN_DOMAIN", "Accepted", "FakeProvider", "running"]
