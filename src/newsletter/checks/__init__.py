"""Pre-send checks on the built email: each finding has an id, a severity and a place.

    check_issue(settings, folder)   build if the sources changed, then run every rule
    check_email(email)              run every rule on an email already loaded

The rules live in checks/rules/, one module per family, registered in one table
(findings.RULES); `--links` and `--spam` add the rules that need the network or
SpamAssassin.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx

from newsletter.checks import rules as _rules  # noqa: F401 - registers the rules
from newsletter.checks import spam as _spam  # noqa: F401 - registers spam-score
from newsletter.checks.email import BuiltEmail, load_email
from newsletter.checks.findings import RULES, Finding, Report, Rule, Severity
from newsletter.checks.online import LINK_TIMEOUT, fetch_all, urls_to_fetch
from newsletter.checks.spam import spam_score
from newsletter.config import Settings

__all__ = [
    "RULES",
    "BuiltEmail",
    "Finding",
    "Report",
    "Rule",
    "Severity",
    "check_email",
    "check_issue",
    "load_email",
]


def check_issue(
    settings: Settings,
    folder: Path,
    *,
    links: bool = False,
    spam: bool = False,
    client: httpx.Client | None = None,
    timeout: float = LINK_TIMEOUT,
) -> Report:
    """Every check on the issue in `folder`, built first when its build is out of date."""
    email = load_email(settings, folder)
    return check_email(email, links=links, spam=spam, client=client, timeout=timeout)


def check_email(
    email: BuiltEmail,
    *,
    links: bool = False,
    spam: bool = False,
    client: httpx.Client | None = None,
    timeout: float = LINK_TIMEOUT,
) -> Report:
    notes: list[str] = []
    if links:
        email = replace(email, fetched=fetch_all(urls_to_fetch(email), client, timeout))
    if spam:
        score, note = spam_score(email)
        email = replace(email, spam=score)
        notes.append(note)
    findings: list[Finding] = []
    for rule in RULES.values():
        if (rule.needs == "links" and not links) or (rule.needs == "spam" and not spam):
            continue
        findings.extend(rule.run(email))
    findings.sort(key=lambda f: f.severity is not Severity.ERROR)
    return Report(email.issue.key, tuple(findings), tuple(notes))
