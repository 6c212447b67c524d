"""The example issue renders byte for byte to tests/golden/.

After an intended change to templates or rendering, regenerate with
`pytest tests/test_golden.py --update-golden` and read the diff before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.compose.build import build_issue
from newsletter.config import Settings

from conftest import EXAMPLE

GOLDEN = Path(__file__).parent / "golden" / EXAMPLE


@pytest.mark.parametrize("name", ["email.html", "email.txt"])
def test_example_issue_matches_golden(
    settings: Settings, issue_dir: Path, name: str, request: pytest.FixtureRequest
) -> None:
    build_issue(settings, issue_dir)
    produced = (settings.build_dir / EXAMPLE / name).read_text(encoding="utf-8")
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(produced, encoding="utf-8")
    assert golden.is_file(), f"{golden} missing: run pytest --update-golden"
    assert produced == golden.read_text(encoding="utf-8"), (
        f"{name} differs from {golden}; if intended, run pytest --update-golden"
    )
