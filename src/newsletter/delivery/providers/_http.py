"""HTTP shared by the provider adapters: one client per run, and reading the answer.

Every foreign error stops here: adapters get a `Reply` holding the provider's `Answer`
(status, the JSON body parsed once, headers) and, unless it is a 2xx to read, the verdict
for the whole batch; nothing outside providers/ sees an httpx exception. Adapters read
their quirks from the parsed answer, never from the prose made of it. Keys are redacted
from every text that leaves this module.
"""

from __future__ import annotations

import base64
import email.utils
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from newsletter import __version__
from newsletter.compose.message import Message
from newsletter.delivery.providers.base import SendResult, Status, same_result
from newsletter.errors import ProviderAuthError

USER_AGENT = f"newsletter/{__version__} python-httpx/{httpx.__version__}"
EXCERPT = 300
CHUNK = 256 * 1024


def make_client(
    timeout: float = 30.0, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """One client per run: explicit timeouts, keep-alive, and a User-Agent naming us."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30),
        headers={"User-Agent": USER_AGENT},
        transport=transport,
        follow_redirects=False,
    )


class Secrets:
    """The values that must never be printed, with the forms they travel in."""

    def __init__(self, *values: str) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) >= 4:
                forms.add(value)
                forms.add(base64.b64encode(f"api:{value}".encode()).decode())
        self._forms = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "[redacted]")
        return text


@dataclass(frozen=True)
class Answer:
    """What the provider said, read once: adapters decide from this, never from prose.

    `body` is the JSON document when the answer is JSON, else None; `excerpt` is a short
    one-line rendering of the raw answer for messages ("text/html: <html>..."), keys
    redacted.
    """

    status: int
    body: Any
    excerpt: str
    headers: httpx.Headers

    @classmethod
    def read(cls, response: httpx.Response, secrets: Secrets) -> Answer:
        said = secrets.redact(excerpt(response))
        return cls(response.status_code, _parse(response), said, response.headers)


@dataclass(frozen=True)
class Reply:
    """Who answered, their answer (None when none came), and the verdict for the batch.

    `results` is None exactly when the answer is a 2xx for the adapter to read.
    """

    provider: str
    answer: Answer | None
    results: list[SendResult] | None = None


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    batch: Sequence[Message],
    *,
    provider: str,
    key_hint: str,
    secrets: Secrets,
    **kwargs: Any,
) -> Reply:
    """Make one request and classify what came back.

    429, 5xx, 408 and connections that never opened: retry (honouring Retry-After).
    Timeouts and connections broken after the request went out: uncertain.
    401/403: the key is wrong; that stops the whole run (ProviderAuthError).
    Other 4xx: rejected, with the provider's own words.
    """
    body = kwargs.get("content")
    if isinstance(body, bytes) and len(body) > CHUNK:
        # httpcore sends a body by slicing off what the socket took, copying the rest each
        # time: a 30 MB batch became ~100 MB of copies. Views of the body copy nothing.
        view = memoryview(body)
        kwargs["content"] = (view[i : i + CHUNK] for i in range(0, len(body), CHUNK))
        kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Length": str(len(body))}
    try:
        response = client.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # The request never reached the provider: safe to send again.
        reason = secrets.redact(f"could not connect to {provider}: {exc or type(exc).__name__}")
        return Reply(provider, None, same_result(batch, Status.RETRY, reason))
    except httpx.TimeoutException as exc:
        reason = f"{provider} did not answer in time ({type(exc).__name__}); it may have sent"
        return Reply(provider, None, same_result(batch, Status.UNCERTAIN, reason))
    except httpx.TransportError as exc:
        reason = secrets.redact(
            f"the connection to {provider} broke before its answer ({exc or type(exc).__name__});"
            " it may have sent"
        )
        return Reply(provider, None, same_result(batch, Status.UNCERTAIN, reason))
    # A read httpx.Response and its stream refer to each other, so the request (and its
    # body, megabytes for a batch) waits for the cycle collector; swapping the finished
    # stream for a plain one lets reference counting free them as soon as we are done.
    response.stream = httpx.ByteStream(response.content)
    answer = Answer.read(response, secrets)
    status = answer.status
    if 200 <= status < 300:
        return Reply(provider, answer)
    said = secrets.redact(error_text(answer))
    if status in (401, 403):
        raise ProviderAuthError(
            f"{provider} rejected the API key (HTTP {status}: {said}); {key_hint}",
            provider=provider,
            status=status,
            body=said,
        )
    if status in (408, 429) or status >= 500:
        reason = f"{provider} answered HTTP {status}: {said}"
        wait = retry_after(answer.headers)
        return Reply(provider, answer, same_result(batch, Status.RETRY, reason, wait))
    reason = f"{provider}: HTTP {status}: {said}"
    return Reply(provider, answer, same_result(batch, Status.REJECTED, reason))


def finish(
    reply: Reply, batch: Sequence[Message], read: Callable[[Answer], list[SendResult] | None]
) -> list[SendResult]:
    """How every adapter ends, so that none of them can forget a case.

    The verdict `exchange` reached for the whole batch, else what `read` makes of the 2xx
    answer, else "unreadable" when `read` does not recognise it (returns None).
    """
    if reply.results is not None:
        return reply.results
    assert reply.answer is not None  # exchange gives a verdict whenever no answer came
    results = read(reply.answer)
    return unreadable(reply.provider, reply.answer, batch) if results is None else results


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


def _parse(response: httpx.Response) -> Any:
    """The JSON document, whatever the content type says, or None when it is not JSON.

    Error answers are read whatever they are labelled (some proxies and providers call
    JSON text/plain); a 2xx must be labelled JSON, as each provider documents.
    """
    if 200 <= response.status_code < 300 and "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def excerpt(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    text = " ".join(response.text.split())[:EXCERPT] or "(empty body)"
    return f"{kind}: {text}"


def unreadable(provider: str, answer: Answer, batch: Sequence[Message]) -> list[SendResult]:
    """A 2xx answer we cannot read: most often base_url points at the wrong server."""
    reason = (
        f"{provider} answered HTTP {answer.status} with something other than the "
        f"JSON it documents (is base_url right?): {answer.excerpt}"
    )
    return same_result(batch, Status.REJECTED, reason)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or a rate-limit reset."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    reset = headers.get("ratelimit-reset")  # Resend: seconds until reset
    if reset and reset.replace(".", "", 1).isdigit():
        return float(reset)
    reset = headers.get("x-ratelimit-reset")  # SendGrid: a Unix time
    if reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None
