"""How the long-running parts (a send, `serve`) treat Python's cycle collector and, for a
send, its interpreter lock."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Iterator


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
    threshold = gc.get_threshold()
    if young is not None:
        gc.set_threshold(young, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


_turns_lock = threading.Lock()
_turns_holders = 0
_turns_before = 0.0


@contextlib.contextmanager
def longer_turns(seconds: float) -> Iterator[None]:
    """Let a thread that holds the interpreter lock keep it up to `seconds` before it is
    made to hand it over (sys.setswitchinterval; 5 ms by default).

    A send's threads (claims and answers in one, requests in the others) mostly hand the
    lock over themselves, waiting on the database or the network. Forced hand-overs
    every 5 ms between them cost ~8 % of a send's CPU on the development machine (each
    thread comes back to caches the other has emptied); nothing in a send waits on
    a 50 ms turn (pacing is per second, the senders' heartbeats per several seconds).
    Nested or overlapping uses (sends in threads of one process) keep the longer turns
    until the last one ends, which puts back what was there before the first.
    """
    global _turns_holders, _turns_before
    with _turns_lock:
        if _turns_holders == 0:
            _turns_before = sys.getswitchinterval()
            sys.setswitchinterval(seconds)
        _turns_holders += 1
    try:
        yield
    finally:
        with _turns_lock:
            _turns_holders -= 1
            if _turns_holders == 0:
                sys.setswitchinterval(_turns_before)
