"""Per-client rate limits: token buckets in this process's memory.

A client is its IP address (the one the proxy reports, when serve runs behind one), or
its /64 for IPv6, where one machine holds a whole prefix. Each worker process keeps its
own buckets, so with N workers a client may get up to N times a limit; the limits that
must hold exactly (confirmation emails per address) are counted in the database instead
(audience.consent). The table of clients is bounded: the least recently seen go first.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

MAX_CLIENTS = 50_000


@dataclass(frozen=True)
class Rate:
    """`burst` requests at once, refilled at `per_minute` a minute."""

    burst: int
    per_minute: float


# What one client may do, by kind of request.
RATES = {
    "page": Rate(burst=60, per_minute=60),  # GET pages and their forms
    "subscribe": Rate(burst=5, per_minute=1),  # POST /subscribe, /resubscribe
    "bad-token": Rate(burst=20, per_minute=10),  # links that are not ours: guessing
}


class RateLimiter:
    """allow(kind, client) spends one token of that client's bucket, if it has one."""

    def __init__(
        self,
        rates: dict[str, Rate] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.rates = rates or RATES
        self.clock = clock
        self.max_clients = max_clients
        self.buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def allow(self, kind: str, client: str) -> bool:
        rate = self.rates[kind]
        key = (kind, client)
        stamp = self.clock()
        tokens, last = self.buckets.pop(key, (float(rate.burst), stamp))
        tokens = min(float(rate.burst), tokens + (stamp - last) * rate.per_minute / 60)
        allowed = tokens >= 1
        self.buckets[key] = (tokens - 1 if allowed else tokens, stamp)
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return allowed

    def retry_after(self, kind: str) -> int:
        """Seconds until one more request is allowed after running dry."""
        return max(1, round(60 / self.rates[kind].per_minute))


def client_of(request: Request) -> str:
    """The client's address as rate limits count it: IPv4 as is, IPv6 by its /64."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host
