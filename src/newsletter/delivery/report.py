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

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped + self.uncertain

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


@dataclass
class SendReport:
    issue: str
    provider: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: list[str] = field(default_factory=list)
    stopped: str = ""  # why the run stopped early; empty when it ran to the end
    finished: bool = False  # nothing is left pending, in flight or uncertain
    dry_run: bool = False
    personalize_us: float = 0.0  # dry run: microseconds per recipient
