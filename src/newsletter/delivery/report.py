"""What a send tells its caller while it runs (`Progress`) and when it ends (`SendReport`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Progress:
    total: int
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: int = 0
    started: float = field(default_factory=time.monotonic)
    # Wall-clock time until which the provider asked us to wait (429/5xx), if it did.
    waiting_until: float | None = None

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.uncertain

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0

    @property
    def note(self) -> str:
        """What a progress line says besides the counts."""
        if self.waiting_until is None or self.waiting_until <= time.time():
            return ""
        return "the provider asked to wait until " + time.strftime(
            "%H:%M:%S", time.localtime(self.waiting_until)
        )


@dataclass
class SendReport:
    issue: str
    provider: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: list[str] = field(default_factory=list)
    deferred: int = 0  # still pending: the provider kept asking to try later
    stopped: str = ""  # why the run stopped early; empty when it ran to the end
    interrupted: bool = False  # stopped on request (Ctrl-C)
    finished: bool = False  # nothing is left pending, in flight or uncertain
    elsewhere: list[str] = field(default_factory=list)  # live senders with rows in flight
    in_flight_elsewhere: int = 0
    dry_run: bool = False
    personalize_us: float = 0.0  # dry run: microseconds per recipient
