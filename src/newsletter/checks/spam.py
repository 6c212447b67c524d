"""`check --spam`: SpamAssassin's score of the .eml with its local rules only (no network).

Where `spamassassin` is not installed, the check says so in one line and goes on.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from newsletter.checks.email import BuiltEmail, SpamScore
from newsletter.checks.findings import Found, Place, Severity, rule

SPAM_TIMEOUT = 60.0
_STATUS = re.compile(
    r"^X-Spam-Status:\s*\w+,\s*score=(-?[\d.]+)\s+required=(-?[\d.]+)(?:\s+tests=(.*?))?"
    r"(?:\s+autolearn=|\s+version=|$)",
    re.MULTILINE | re.DOTALL,
)


def spam_score(email: BuiltEmail) -> tuple[SpamScore | None, str]:
    """SpamAssassin's score, or None and one line saying why there is none."""
    program = shutil.which("spamassassin")
    if program is None:
        return None, "SpamAssassin is not installed (no spamassassin on PATH); --spam skipped"
    eml = (email.build_dir / "email.eml").read_bytes()
    try:
        done = subprocess.run(
            [program, "--local", "--test-mode"],
            input=eml,
            capture_output=True,
            timeout=SPAM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"SpamAssassin did not run ({exc}); --spam skipped"
    score = parse_status(done.stdout.decode("utf-8", "replace"))
    if score is None:
        return None, "SpamAssassin gave no X-Spam-Status header; --spam skipped"
    return score, f"SpamAssassin score {score.score:g} (spam from {score.required:g})"


def parse_status(output: str) -> SpamScore | None:
    """The score in SpamAssassin's X-Spam-Status header (folded lines joined)."""
    match = _STATUS.search(re.sub(r"\r?\n[ \t]+", " ", output))
    if match is None:
        return None
    tests = " ".join((match.group(3) or "").split())
    return SpamScore(float(match.group(1)), float(match.group(2)), tests)


@rule("spam-score", Severity.ERROR, "SpamAssassin scores the email as spam (--spam)", needs="spam")
def spam_verdict(email: BuiltEmail) -> Found:
    verdict = email.spam
    if verdict is not None and verdict.score >= verdict.required:
        yield (
            f"SpamAssassin scores it {verdict.score:g}, spam from {verdict.required:g} "
            f"(tests: {verdict.tests or 'none named'})",
            Place(email.shown(email.build_dir / "email.eml")),
        )
