"""How the long-running parts (a send, `serve`) treat Python's cycle collector and, for a
send, its interpreter lock."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


class _Shared:
    """A process-wide setting that overlapping users hold together (sends in threads of
    one process): the first one in sets it, the last one out puts back what was there
    before the first. A later user's value waits for the earlier ones to leave."""

    def __init__(self, read: Callable[[], Any], write: Callable[[Any], None]) -> None:
        self.read, self.write = read, write
        self.lock = threading.Lock()
        self.holders = 0
        self.before: Any = None

    @contextlib.contextmanager
    def held(self, value: Any) -> Iterator[None]:
        with self.lock:
            if self.holders == 0:
                self.before = self.read()
                self.write(value)
            self.holders += 1
        try:
            yield
        finally:
            with self.lock:
                self.holders -= 1
                if self.holders == 0:
                    self.write(self.before)


def _set_young(allocations: int) -> None:
    gc.set_threshold(allocations, *gc.get_threshold()[1:])


_young = _Shared(lambda: gc.get_threshold()[0], _set_young)
_switch_interval = _Shared(sys.getswitchinterval, sys.setswitchinterval)


@contextlib.contextmanager
def quiet_collector(young: int | None = None) -> Iterator[None]:
    """Keep the cyclic garbage collector off everything the process holds so far.

    By the time a send or `serve` starts, the process holds all it imported and built
    (lxml, premailer, Jinja2, SQLAlchemy, Starlette: hundreds of thousands of objects),
    and every few thousand allocations the collector's full passes walked all of it
    again, for nothing: about a tenth of a send's CPU, and the slowest answers' pauses
    under load. Frozen, it looks only at what is made after; unfrozen at the end, what
    was frozen can be collected again (a test process starts many of these).

    `young`: the allocations between the collector's youngest passes, for work that
    makes next to no cycles (a send of 100,000 left 10-20 objects for it to find) and
    many short-lived objects, which it would otherwise look at every 700.
    """
    gc.freeze()
    try:
        with _young.held(young) if young is not None else contextlib.nullcontext():
            yield
    finally:
        gc.unfreeze()


def longer_turns(seconds: float) -> contextlib.AbstractContextManager[None]:
    """Let a thread that holds the interpreter lock keep it up to `seconds` before it is
    made to hand it over (sys.setswitchinterval; 5 ms by default).

    A send's threads (claims and answers in one, requests in the others) mostly hand the
    lock over themselves, waiting on the database or the network. Forced hand-overs
    every 5 ms between them cost ~8 % of a send's CPU on the development machine (each
    thread comes back to caches the other has emptied); nothing in a send waits on
    a 50 ms turn (pacing is per second, the senders' heartbeats per several seconds).
    """
    return _switch_interval.held(seconds)
