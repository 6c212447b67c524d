"""Group commit: the database writes of the requests of one moment, in one transaction.

A one-click unsubscribe or a single webhook event is one small UPDATE or INSERT, and
alone in its transaction it costs mostly the transaction: SQLAlchemy's begin and commit,
SQLite's write lock and WAL append. Under load `serve` hands such writes to a
GroupCommit, which writes everything handed in while the previous group was being
written as one group, in one transaction, and only then answers each request: nothing is
answered before its commit, so nothing answered 200 can be lost. A group also waits up
to `gather` seconds (2 ms) for company, or until 8 requests wait, before it is written:
a commit costs SQLite some hundreds of microseconds of CPU whatever it holds, so even a
moderate rate (a thousand a second) is written in groups, for a few ms more an answer.

The transaction runs in a worker thread, so the event loop keeps serving pages while the
database waits for a lock (a `send` running beside `serve`). A GroupCommit may also be
given a write to try first on the event loop's own thread, one that never waits for a
lock (SQLite with no busy timeout): under load, handing each group to the thread and its
answers back, with the two threads taking turns at the interpreter, cost a one-click
unsubscribe more than its UPDATE. If that write fails for any reason (another process is
writing), the group goes to the thread as before, and so does a group of more than
AT_ONCE_MOST requests, so the loop never holds still for long. When a group's transaction
fails, each request's writes are tried again alone, so one bad request fails only itself
and the others are still answered as if they had come alone; unless the database itself
failed (locked or gone), which fails the whole group at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.exc import OperationalError

log = logging.getLogger("newsletter.web")

# The largest group written on the event loop (a few ms at most); larger ones go to the
# thread. Under the one-click load of benchmarks/serve.py groups are far smaller.
AT_ONCE_MOST = 64

Item = TypeVar("Item")
Answer = TypeVar("Answer")


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class GroupCommit(Generic[Item, Answer]):
    """`await submit(item)` → the answer `write` gave for it, once its group committed.

    `write(items)` writes a group in one transaction and returns one answer per item, in
    order. `most` caps a group, weighed by `weight(item)` (a webhook batch counts its
    events); a group waits up to `gather` seconds for more first, until `enough`
    requests or `enough_weight` wait. All groups
    go through `executor`; one worker thread for every GroupCommit of an app keeps
    SQLite's single writer from waiting on itself. `at_once`, when given, is tried on the
    event loop first and must not wait (see the module docstring).
    """

    def __init__(
        self,
        write: Callable[[list[Item]], Sequence[Answer]],
        executor: Executor | None = None,
        *,
        most: int = 1000,
        weight: Callable[[Item], int] = lambda _: 1,
        gather: float = 0.002,
        enough: int = 8,
        enough_weight: int | None = None,
        at_once: Callable[[list[Item]], Sequence[Answer]] | None = None,
    ) -> None:
        self.write = write
        self.at_once = at_once
        self.executor = executor
        self.most = most
        self.weight = weight
        self.gather = gather
        self.enough = enough
        self.enough_weight = most if enough_weight is None else enough_weight
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._weight = 0  # of what is waiting
        self._writer: asyncio.Task[None] | None = None
        self._full: asyncio.Event | None = None  # set once enough waits

    async def submit(self, item: Item) -> Answer:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._waiting.append((item, future))
        self._weight += self.weight(item)
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._full = asyncio.Event()
            self._writer = loop.create_task(self._write_groups())
        elif self._enough() and self._full is not None:
            self._full.set()
        return await future

    def _enough(self) -> bool:
        """`enough` requests wait (a few clients each awaiting their answer would only
        wait longer for nothing), or `enough_weight` (a SendGrid batch of 100 events)."""
        return len(self._waiting) >= self.enough or self._weight >= self.enough_weight

    async def _gather(self) -> None:
        """Wait up to `gather` seconds for company, less once enough waits."""
        if not self.gather or self._full is None or self._enough():
            return
        self._full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.gather)

    def _next_group(self) -> list[tuple[Item, asyncio.Future[Answer]]]:
        taken, weight = 0, 0
        for item, _ in self._waiting:
            if taken and weight + self.weight(item) > self.most:
                break
            weight += self.weight(item)
            taken += 1
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        self._weight -= weight
        return group

    async def _write_groups(self) -> None:
        """Write groups until nothing is waiting; then this task ends (the next submit
        starts another), so there is nothing to stop at shutdown."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            await self._gather()
            group = self._next_group()
            items = [item for item, _ in group]
            answers = self._write_at_once(items)
            if answers is None:
                try:
                    answers = await loop.run_in_executor(self.executor, self._write_each, items)
                except asyncio.CancelledError:  # the server is stopping
                    for _, future in group + self._waiting:
                        future.cancel()
                    self._waiting = []
                    raise
                except Exception as exc:  # noqa: BLE001 - the executor is shut down
                    answers = [_Failed(exc)] * len(group)
            for (_, future), answer in zip(group, answers, strict=True):
                if future.done():  # its request went away; the write stands
                    continue
                if isinstance(answer, _Failed):
                    future.set_exception(answer.error)
                else:
                    future.set_result(answer)

    def _write_at_once(self, items: list[Item]) -> list[Answer | _Failed] | None:
        """On the event loop: the group by `at_once`, or None for the worker thread to
        write it (no `at_once`, a group too large, or it failed: rolled back)."""
        if self.at_once is None or len(items) > AT_ONCE_MOST:
            return None
        try:
            return list(self.at_once(items))
        except Exception:  # noqa: BLE001 - locked, or worse: the thread's way tells which
            return None

    def _write_each(self, items: list[Item]) -> list[Answer | _Failed]:
        """In the worker thread: the group in one transaction, or each item alone."""
        try:
            return list(self.write(items))
        except Exception as exc:  # noqa: BLE001 - handed to each request's own answer
            if len(items) == 1 or _unavailable(exc):
                return [_Failed(exc)] * len(items)
            log.warning("a group of %d writes failed; writing each alone", len(items))
        answers: list[Answer | _Failed] = []
        for item in items:
            try:
                answers.append(self.write([item])[0])
            except Exception as exc:  # noqa: BLE001
                answers.append(_Failed(exc))
        return answers


def _unavailable(exc: BaseException) -> bool:
    """Whether the database itself failed (locked past its timeout, gone): then every
    write alone would fail the same way, after as long a wait each."""
    return isinstance(exc.__cause__ or exc, OperationalError)
