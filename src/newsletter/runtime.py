"""How the long-running parts (a send, `serve`) treat Python's cycle collector."""

from __future__ import annotations

import contextlib
import gc
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
