"""HTTP shared by the provider adapters: one client per run, and reading the answer.

Every foreign error stops here: adapters get a `Reply` holding the provider's `Answer`
(status, the JSON body parsed once, headers) and, unless it is a 2xx to read, the verdict
for the whole batch; nothing outside providers/ sees an httpx exception. Adapters read
their quirks from the parsed answer, never from the prose made of it. Secrets are taken
out of the answer as it is read, so nothing made from it can quote them. An adapter holds
an `Endpoint`: where it posts and what that takes, so that it only states what differs.
"""

from __future__ import annotations

import codecs
import email.utils
import ipaddress
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from newsletter import __version__
from newsletter.compose.message import Message
from newsletter.delivery.providers._secrets import Secrets
from newsletter.delivery.providers.base import (
    Options,
    SendResult,
    Status,
    depart,
    same_result,
)
from newsletter.errors import ConfigError, ProviderAuthError, ProviderError

USER_AGENT = f"newsletter/{__version__} python-httpx/{httpx.__version__}"
EXCERPT = 300
CHUNK = 256 * 1024
# Bytes read of any answer: providers answer a batch in kilobytes; more is a wrong
# base_url or a misbehaving proxy, and reading it all could exhaust memory.
ANSWER_CAP = 1024 * 1024


def make_client(
    timeout: float = 30.0, transport: httpx.BaseTransport | None = None, *, plain_http: bool = False
) -> httpx.Client:
    """One client per run: explicit timeouts, keep-alive, and a User-Agent naming us.

    `plain_http`: the client only ever speaks http:// (check_base_url allows that to this
    machine alone), so it skips loading the CA certificates, a fixed 0.15 s of CPU a run
    that nothing would use; an https:// request through it is refused.
    """
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)
    if transport is None and plain_http:
        transport = _PlainHTTP(httpx.HTTPTransport(verify=False, limits=limits))
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=limits,
        headers={"User-Agent": USER_AGENT},
        transport=transport,
        follow_redirects=False,
    )


class _PlainHTTP(httpx.BaseTransport):
    """A transport for http:// alone: no TLS, so no certificates to load."""

    def __init__(self, inner: httpx.HTTPTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol("this client speaks plain http to this machine only")
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def check_base_url(url: str) -> None:
    """Refuse a base_url that would carry the key in clear text: http only to this machine."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme == "https" or parts.scheme == "http" and _loopback(host):
        return
    raise ConfigError(
        f"provider.base_url (NEWSLETTER_PROVIDER_BASE_URL) is {parts.scheme}://{host}: the "
        "API key would travel in clear text; use https://, or http:// only to this machine "
        "(localhost, 127.0.0.1, ::1)"
    )


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Answer:
    """What the provider said, read once: adapters decide from this, never from prose.

    `body` is the JSON document when the answer is JSON, else None; `excerpt` is a short
    one-line rendering of the raw answer for messages ("text/html: <html>..."). `cut` says
    only the first ANSWER_CAP bytes were read. Secrets are already out of all of them.
    """

    status: int
    body: Any
    excerpt: str
    headers: httpx.Headers
    cut: bool = False

    @classmethod
    def read(cls, response: httpx.Response, data: bytes, cut: bool, secrets: Secrets) -> Answer:
        headers = httpx.Headers(
            [(name, secrets.redact(value)) for name, value in response.headers.multi_items()]
        )
        kind = headers.get("content-type", "no content type").split(";")[0]
        raw = data.decode(_encoding(response), errors="replace")
        text = secrets.redact(raw)
        said = " ".join(text[: EXCERPT * 4].split())[:EXCERPT] or "(empty body)"
        # Walking every string of a 500-item answer costs more than the rest of reading
        # it: only an answer that quotes a secret (or could hide one in \u escapes) is.
        scrub = text != raw or "\\u" in raw
        body = None if cut else _parse(response.status_code, headers, data, secrets, scrub)
        return cls(response.status_code, body, f"{kind}: {said}", headers, cut)


@dataclass(frozen=True)
class Reply:
    """Who answered, their answer (None when none came), and the verdict for the batch.

    `results` is None exactly when the answer is a 2xx for the adapter to read.
    """

    provider: str
    answer: Answer | None
    results: list[SendResult] | None = None
    secrets: Secrets = field(default_factory=Secrets)


@dataclass(frozen=True)
class Endpoint:
    """Where an adapter posts, and what it takes to read the answer safely."""

    client: httpx.Client
    url: str
    provider: str  # the provider's name as messages give it ("Postmark")
    key_hint: str  # what to do when the key is rejected
    secrets: Secrets

    @classmethod
    def at(
        cls, options: Options, base_url: str, path: str, *, provider: str, key_hint: str
    ) -> Endpoint:
        """base_url + path, through the options' client; refuses a base_url that would
        carry the key in clear text, and keeps every secret the options know out of text."""
        check_base_url(base_url)
        secrets = Secrets(options.key, *options.secrets)
        return cls(options.client, base_url.rstrip("/") + path, provider, key_hint, secrets)

    def post(self, batch: Sequence[Message], **request: Any) -> Reply:
        """Send one request and classify what came back.

        429, 5xx, 408 and connections that never opened: retry (honouring Retry-After).
        Timeouts, connections broken after the request went out, and a 2xx that broke off
        or ran past ANSWER_CAP: uncertain, as the provider may have accepted the batch.
        401/403: the key is wrong; that stops the whole run (ProviderAuthError).
        Other 4xx: rejected, with the provider's own words.
        """
        provider, secrets = self.provider, self.secrets
        body = request.get("content")
        if isinstance(body, bytes) and len(body) > CHUNK:
            # httpcore sends a body by slicing off what the socket took, copying the rest
            # each time: a 30 MB batch became ~100 MB of copies. Views copy nothing.
            view = memoryview(body)
            request["content"] = (view[i : i + CHUNK] for i in range(0, len(body), CHUNK))
            request["headers"] = {**request.get("headers", {}), "Content-Length": str(len(body))}
        depart()
        try:
            with self.client.stream("POST", self.url, **request) as response:
                data, cut, broke = _read_capped(response)
        except (UnicodeError, httpx.LocalProtocolError) as exc:
            # A header HTTP cannot carry (api_key refuses such keys; an adapter made
            # directly may not): nothing went out. Not chained: the cause quotes the
            # header, key and all.
            raise ProviderError(
                f"could not make a request {provider} can read: a header holds a character "
                f"HTTP cannot carry ({type(exc).__name__}); {self.key_hint}",
                provider=provider,
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never reached the provider: safe to send again.
            said = secrets.redact(f"could not connect to {provider}: {exc or type(exc).__name__}")
            return self._verdict(batch, Status.RETRY, said)
        except httpx.TimeoutException as exc:
            said = f"{provider} did not answer in time ({type(exc).__name__}); it may have sent"
            return self._verdict(batch, Status.UNCERTAIN, said)
        except httpx.TransportError as exc:
            said = secrets.redact(
                f"the connection to {provider} broke before its answer "
                f"({exc or type(exc).__name__}); it may have sent"
            )
            return self._verdict(batch, Status.UNCERTAIN, said)
        # A read httpx.Response and its stream refer to each other, so the request (and its
        # body, megabytes for a batch) waits for the cycle collector; swapping the finished
        # stream for a plain one lets reference counting free them as soon as we are done.
        response.stream = httpx.ByteStream(b"")
        answer = Answer.read(response, data, cut or broke is not None, secrets)
        return self._classify(answer, broke, batch)

    def _verdict(
        self,
        batch: Sequence[Message],
        status: Status,
        reason: str,
        answer: Answer | None = None,
        wait: float | None = None,
    ) -> Reply:
        """One verdict for the whole batch."""
        results = same_result(batch, status, reason, wait)
        return Reply(self.provider, answer, results, self.secrets)

    def _classify(self, answer: Answer, broke: Exception | None, batch: Sequence[Message]) -> Reply:
        provider, status = self.provider, answer.status
        if 200 <= status < 300:
            if not answer.cut:
                return Reply(provider, answer, secrets=self.secrets)
            # The provider said yes to something; what, we cannot read: it may have sent.
            how = (
                self.secrets.redact(f"its answer broke off ({broke or type(broke).__name__})")
                if broke is not None
                else f"an answer longer than {ANSWER_CAP // 1024} KiB"
            )
            said = f"{provider} answered HTTP {status} with {how}; it may have sent: "
            return self._verdict(batch, Status.UNCERTAIN, said + answer.excerpt, answer)
        said = self.secrets.redact(error_text(answer))
        if status in (401, 403):
            raise ProviderAuthError(
                f"{provider} rejected the API key (HTTP {status}: {said}); {self.key_hint}",
                provider=provider,
                status=status,
                body=said,
            )
        if status in (408, 429) or status >= 500:
            wait = retry_after(answer.headers)
            reason = f"{provider} answered HTTP {status}: {said}"
            return self._verdict(batch, Status.RETRY, reason, answer, wait)
        return self._verdict(batch, Status.REJECTED, f"{provider}: HTTP {status}: {said}", answer)


def _read_capped(response: httpx.Response) -> tuple[bytes, bool, Exception | None]:
    """Up to ANSWER_CAP bytes of the body; whether there was more; what broke the read."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > ANSWER_CAP:
                return b"".join(chunks)[:ANSWER_CAP], True, None
    except httpx.RequestError as exc:  # dropped, timed out or undecodable mid-body
        return b"".join(chunks), False, exc
    return b"".join(chunks), False, None


def finish(
    reply: Reply, batch: Sequence[Message], read: Callable[[Answer], list[SendResult] | None]
) -> list[SendResult]:
    """How every adapter ends, so that none of them can forget a case.

    The verdict `Endpoint.post` reached for the whole batch, else what `read` makes of the 2xx
    answer, else "unreadable" when `read` does not recognise it (returns None). Secrets
    are taken out once more, whatever the adapter quoted.
    """
    if reply.results is not None:
        results = reply.results
    else:
        assert reply.answer is not None  # post gives a verdict whenever no answer came
        read_results = read(reply.answer)
        results = (
            unreadable(reply.provider, reply.answer, batch)
            if read_results is None
            else read_results
        )
    return [_redacted(result, reply.secrets) for result in results]


def _redacted(result: SendResult, secrets: Secrets) -> SendResult:
    """The result with secrets out of its reason (message ids come from an answer that
    was scrubbed as it was read, so most results, the sent ones, pass untouched)."""
    if not result.reason:
        return result
    reason, message_id = secrets.redact(result.reason), secrets.redact(result.message_id)
    if (reason, message_id) == (result.reason, result.message_id):
        return result
    return result._replace(reason=reason, message_id=message_id)


def error_text(answer: Answer) -> str:
    """The provider's own explanation, whichever of their error shapes it comes in."""
    body = answer.body
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:  # SendGrid: message and the field at fault
            return "; ".join(
                f"{e.get('message', e)}" + (f" ({e['field']})" if e.get("field") else "")
                if isinstance(e, dict)
                else str(e)
                for e in errors
            )[: EXCERPT * 3]
        for key in ("Message", "message", "error"):  # Postmark, Mailgun and Resend
            if isinstance(body.get(key), str):
                code = body.get("ErrorCode", body.get("name"))
                return (f"{body[key]} ({code})" if code not in (None, 0) else body[key])[:EXCERPT]
    return answer.excerpt


def _encoding(response: httpx.Response) -> str:
    """The answer's declared charset when Python knows it, else UTF-8."""
    declared = response.charset_encoding or "utf-8"
    try:
        return codecs.lookup(declared).name
    except LookupError:
        return "utf-8"


def _parse(
    status: int, headers: httpx.Headers, data: bytes, secrets: Secrets, scrub: bool = True
) -> Any:
    """The JSON document, secrets taken out, whatever the content type says, or None when
    it is not JSON (or nested too deep to walk).

    Error answers are read whatever they are labelled (some proxies and providers call
    JSON text/plain); a 2xx must be labelled JSON, as each provider documents.
    """
    if 200 <= status < 300 and "json" not in headers.get("content-type", ""):
        return None
    try:
        value = orjson.loads(data)
    except (ValueError, RecursionError):
        return None
    return _scrub(value, secrets) if scrub else value


def _scrub(value: Any, secrets: Secrets) -> Any:
    """`value` (parsed JSON) with secrets taken out of every string in it."""
    if isinstance(value, str):
        return secrets.redact(value)
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    if isinstance(value, dict):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    return value


def unreadable(provider: str, answer: Answer, batch: Sequence[Message]) -> list[SendResult]:
    """A 2xx answer we cannot read: most often base_url points at the wrong server. The
    provider may have taken the batch, so it is uncertain: never rejected, never resent
    unless asked."""
    reason = (
        f"{provider} answered HTTP {answer.status} with something other than the answer "
        f"it documents (is base_url right?); it may have sent: {answer.excerpt}"
    )
    return same_result(batch, Status.UNCERTAIN, reason)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or a rate-limit reset.

    Always None or a finite number of seconds, at least 0: a provider's NaN, infinity or
    date in the year 99999 says nothing usable. How long is too long is the caller's call.
    """
    value = headers.get("retry-after")
    if value:
        try:
            return _finite(float(value))
        except ValueError:
            pass  # not a number: an HTTP date, or nothing usable
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        return _finite(when.timestamp() - time.time())
    reset = headers.get("ratelimit-reset")  # Resend: seconds until reset
    if reset and reset.isascii() and reset.replace(".", "", 1).isdigit():
        return _finite(float(reset))
    reset = headers.get("x-ratelimit-reset")  # SendGrid: a Unix time
    if reset and reset.isascii() and reset.isdigit():
        return _finite(float(reset) - time.time())
    return None


def _finite(seconds: float) -> float | None:
    """None for NaN and infinities, else at least 0."""
    return max(0.0, seconds) if math.isfinite(seconds) else None
