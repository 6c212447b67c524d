"""The cycle collector is kept off the heap a send or `serve` starts with, and given it back;
a send takes longer turns with the interpreter lock, and gives that back too."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path

import pytest
from web_support import TestClient

from newsletter.audience.subscribers import add_subscriber
from newsletter.config import Settings
from newsletter.delivery.engine import COLLECT_EVERY, SWITCH_EVERY, Progress, send_issue
from newsletter.runtime import longer_turns, quiet_collector
from newsletter.storage import open_engine
from newsletter.web.app import create_app


def test_the_heap_is_frozen_while_quiet_and_given_back_after() -> None:
    assert gc.get_freeze_count() == 0
    with quiet_collector():
        assert gc.get_freeze_count() > 1000  # the imports alone are that many objects
    assert gc.get_freeze_count() == 0


def test_given_back_when_the_work_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), quiet_collector(young=20_000):
        assert gc.get_threshold() == (20_000, *before[1:])
        raise RuntimeError("a send that stopped")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_a_send_collects_less_often_and_gives_the_setting_back(
    settings: Settings, issue_dir: Path
) -> None:
    """The engine asks for rarer young passes while it sends, and only then."""
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def progress(_: Progress) -> None:
        seen.append(gc.get_threshold())

    engine = open_engine(settings)
    for address in ("ana@example.org", "bo@example.org"):
        add_subscriber(engine, address)
    engine.dispose()
    report = send_issue(settings, issue_dir, environ={}, progress=progress)
    assert report.sent == 2
    assert seen and all(t == (COLLECT_EVERY, *before[1:]) for t in seen)
    assert gc.get_threshold() == before


def test_a_send_takes_longer_turns_and_gives_the_setting_back(
    settings: Settings, issue_dir: Path
) -> None:
    before = sys.getswitchinterval()
    assert before != SWITCH_EVERY
    seen: list[float] = []
    engine = open_engine(settings)
    add_subscriber(engine, "ana@example.org")
    engine.dispose()
    report = send_issue(
        settings, issue_dir, environ={}, progress=lambda _: seen.append(sys.getswitchinterval())
    )
    assert report.sent == 1
    assert seen and all(interval == pytest.approx(SWITCH_EVERY) for interval in seen)
    assert sys.getswitchinterval() == before


def test_longer_turns_last_until_the_last_holder_ends_even_when_it_fails() -> None:
    before = sys.getswitchinterval()
    first_in, second_out = threading.Event(), threading.Event()
    during: list[float] = []

    def second() -> None:
        first_in.wait()
        with longer_turns(0.04):
            during.append(sys.getswitchinterval())
        second_out.set()

    other = threading.Thread(target=second)
    other.start()
    with pytest.raises(RuntimeError), longer_turns(0.04):
        first_in.set()
        second_out.wait(5)
        # the other send has ended; this one still has its turns
        during.append(sys.getswitchinterval())
        raise RuntimeError("a send that stopped")
    other.join()
    assert during == pytest.approx([0.04, 0.04])
    assert sys.getswitchinterval() == before


def test_serve_keeps_the_collector_quiet_while_it_runs(settings: Settings) -> None:
    with TestClient(create_app(settings, {})) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 1000
    assert gc.get_freeze_count() == 0
