"""The cycle collector is kept off the heap a send or `serve` starts with, and given it back."""

from __future__ import annotations

import gc

import pytest
from web_support import TestClient

from newsletter.config import Settings
from newsletter.runtime import quiet_collector
from newsletter.web.app import create_app


def test_the_heap_is_frozen_while_quiet_and_given_back_after() -> None:
    assert gc.get_freeze_count() == 0
    with quiet_collector():
        assert gc.get_freeze_count() > 1000  # the imports alone are that many objects
    assert gc.get_freeze_count() == 0


def test_given_back_when_the_work_fails() -> None:
    with pytest.raises(RuntimeError), quiet_collector():
        raise RuntimeError("a send that stopped")
    assert gc.get_freeze_count() == 0


def test_serve_keeps_the_collector_quiet_while_it_runs(settings: Settings) -> None:
    with TestClient(create_app(settings, {})) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 1000
    assert gc.get_freeze_count() == 0
