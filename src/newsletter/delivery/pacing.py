"""Pacing: how fast messages may go, and how long to wait after the provider says "later".

Both senders use it: the send to the list paces every batch through a `TokenBucket` and
pauses its whole pool by the `RetryPolicy` after a 429 or 5xx; test sends only retry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Capped, jittered exponential backoff that never waits less than Retry-After."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    # A provider asking for a longer pause than this gets the message marked failed.
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None, jitter: float) -> float:
        """Seconds before retry number `attempt` (0-based); jitter is in [0, 1)."""
        backoff = min(self.max_delay, self.base_delay * 2.0**attempt) * (0.5 + jitter / 2)
        return max(backoff, retry_after or 0.0)


class TokenBucket:
    """At most `rate` messages a second on average, bursts of up to `capacity`.

    It starts with at most one second's worth of tokens, so a slow rate is slow from the
    first message on.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = min(self.capacity, rate)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def give_back(self, count: int) -> None:
        """Return tokens taken for messages that did not go after all."""
        with self.lock:
            self.tokens = min(self.capacity, self.tokens + count)

    def take(self, count: int, stop: threading.Event) -> bool:
        """Wait until `count` messages may go; False if stopped while waiting."""
        count = min(count, int(self.capacity))
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= count:
                    self.tokens -= count
                    return True
                wait_for = (count - self.tokens) / self.rate
            if stop.wait(min(wait_for, 0.5)):
                return False
