"""What a check finds, and the one registry every rule joins.

A rule is a function from the built email to (message, place) pairs, registered with
`@rule(id, severity, summary)` in its family's module: its id and severity live there
and nowhere else, so adding a rule is one decorated function.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.checks.email import BuiltEmail


class Severity(enum.StrEnum):
    """An error stops `send` (unless --force); a warning is shown, and fails only --strict."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Place:
    """Where a finding is: a file and line for sources, a CSS selector for the HTML."""

    file: str
    line: int | None = None
    selector: str | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.selector:
            return f"{self.file} {self.selector}"
        return self.file


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    place: Place

    def __str__(self) -> str:
        return f"{self.place}: {self.severity.value} {self.rule}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.rule,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.place.file,
            "line": self.place.line,
            "selector": self.place.selector,
        }


Found = Iterable[tuple[str, Place]]
Check = Callable[["BuiltEmail"], Found]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    check: Check
    # "links": needs the fetched links and images (`check --links`); "" always runs.
    needs: str = ""

    def run(self, email: BuiltEmail) -> Iterator[Finding]:
        for message, place in self.check(email):
            yield Finding(self.id, self.severity, message, place)


RULES: dict[str, Rule] = {}


def rule(
    id: str,  # noqa: A002 - the finding's id
    severity: Severity,
    summary: str,
    needs: str = "",
) -> Callable[[Check], Check]:
    """Register a check under `id`; ids are unique across every family."""

    def register(check: Check) -> Check:
        if id in RULES:  # pragma: no cover - a programming error, caught by any test run
            raise ValueError(f"rule {id!r} is registered twice")
        RULES[id] = Rule(id, severity, summary, check, needs)
        return check

    return register


@dataclass(frozen=True)
class Report:
    """Every finding for one issue, errors first, then in the order the rules ran."""

    issue: str
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()  # what could not be checked (SpamAssassin missing, ...)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def fails(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))

    def summary(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        if not errors and not warnings:
            return f"{self.issue}: no errors, no warnings"
        return (
            f"{self.issue}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.as_json() for f in self.findings],
            "notes": list(self.notes),
        }
