"""The YAML front matter of a Markdown article: split off, parsed, each key checked.

Dates stay text for parse_date to check; every problem names the file, the line and the
key, and all of a file's problems are reported together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from newsletter.compose.dates import parse_date
from newsletter.compose.links import checked_url
from newsletter.config_checks import LINE_BREAKS, line_problem
from newsletter.errors import FrontMatterError

FRONT_MATTER_KEYS = ("title", "author", "date", "url", "image", "image_alt", "summary")


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: parse_date checks them and names the key."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def split_front_matter(path: Path, text: str) -> tuple[dict[str, Any], dict[str, int], str]:
    """Return (front matter, line number of each key, body)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        raise FrontMatterError(f"{path}:1: front matter opened with '---' is never closed")
    block = "\n".join(lines[1:end])
    try:
        meta = yaml.load(block, Loader=_FrontMatterLoader) if block.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise FrontMatterError(f"{path}:{line}: broken front matter: {problem}") from exc
    except RecursionError as exc:  # deeply nested [[[[...]]]]
        raise FrontMatterError(f"{path}:2: broken front matter: nested too deeply") from exc
    if not isinstance(meta, dict):
        raise FrontMatterError(f"{path}:2: front matter must be 'key: value' lines")
    _refuse_repeated_keys(path, block)
    key_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:end], start=2):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if match:
            key_lines.setdefault(match.group(1), number)
    return {str(k): v for k, v in meta.items()}, key_lines, "\n".join(lines[end + 1 :])


def _refuse_repeated_keys(path: Path, block: str) -> None:
    """YAML keeps the last of two equal keys without a word: a second `title:` pasted
    under the first would silently win. Refuse it, naming both lines."""
    node = yaml.compose(block, Loader=_FrontMatterLoader)
    if not isinstance(node, yaml.MappingNode):
        return
    first: dict[str, int] = {}
    for key, _ in node.value:
        line = key.start_mark.line + 2  # the block starts on the file's second line
        if isinstance(key, yaml.ScalarNode) and key.value in first:
            raise FrontMatterError(
                f"{path}:{line}: front-matter key '{key.value}' is given twice "
                f"(first on line {first[key.value]}); keep one"
            )
        if isinstance(key, yaml.ScalarNode):
            first[key.value] = line


def check_front_matter(
    path: Path, meta: dict[str, Any], key_lines: dict[str, int], clean: Callable[[str], str]
) -> tuple[dict[str, Any], list[str]]:
    """The article fields the front matter gives, and a line for each problem in it."""
    problems: list[str] = []
    for key in meta:
        if key not in FRONT_MATTER_KEYS:
            problems.append(
                f"{path}:{key_lines.get(key, 1)}: unknown front-matter key '{key}' "
                f"(known: {', '.join(FRONT_MATTER_KEYS)})"
            )
    fields: dict[str, Any] = {}
    checks = _checks(clean)
    for key in FRONT_MATTER_KEYS:
        if key not in meta or meta[key] is None:
            continue
        try:
            fields[key] = checks[key](meta[key])
        except ValueError as exc:
            problems.append(f"{path}:{key_lines.get(key, 1)}: front-matter key '{key}': {exc}")
    return fields, problems


def _checks(clean: Callable[[str], str]) -> dict[str, Callable[[Any], Any]]:
    def text_value(value: Any) -> str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"must be text, not {type(value).__name__}")
        return str(value)

    def one_line(value: Any) -> str:
        cleaned = clean(text_value(value))
        problem = line_problem(cleaned)
        if problem:
            raise ValueError(f"must be a single line ({problem})")
        if not cleaned:
            raise ValueError("must not be empty")
        return cleaned

    def paragraph(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be text, not {type(value).__name__}")
        return re.sub(r"\s+", " ", LINE_BREAKS.sub(" ", clean(value))).strip()

    def alt(value: Any) -> str:
        return "" if value == "" else one_line(value)

    return {
        "title": one_line,
        "author": one_line,
        "date": parse_date,
        "url": lambda v: checked_url(text_value(v)),
        "image": lambda v: checked_url(text_value(v), image=True),
        "image_alt": alt,
        "summary": paragraph,
    }
