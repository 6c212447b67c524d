"""The fake's in-process twin: an httpx.MockTransport handler that answers from a script
and keeps every request, for adapter tests that need no socket."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from newsletter.delivery.providers import make_client

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Answers from a list (the last one again and again) and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(handler: Handler) -> httpx.Client:
    """A client like the one a send uses, with `handler` in place of the network."""
    return make_client(5.0, httpx.MockTransport(handler))
