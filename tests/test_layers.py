"""The package reads as the pipeline: imports point only backwards along it.

    shared ground: errors, files, runtime → config → storage, workspace
    compose → audience → delivery (providers/ inside) → web → cli

Within delivery, the provider adapters know the message, never the engine; the ledger
knows delivery states, never a provider. Nothing imports another package's private
(underscored) modules. A small walk over the import graph, so no tool is needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Rank of each top-level part of the package; an import may only go to an equal or lower rank.
RANKS = {
    "errors": 0,
    "files": 0,
    "__init__": 0,
    "runtime": 0,
    "config": 1,
    "config_checks": 1,
    "storage": 2,
    "workspace": 2,
    "compose": 3,
    "audience": 4,
    "checks": 5,
    "delivery": 5,
    "web": 6,
    "cli": 7,
    "__main__": 8,
}
# Finer rules inside a stage: (importer prefix, imported prefix) pairs that are refused.
FORBIDDEN = [
    ("newsletter.delivery.providers", "newsletter.delivery."),
    ("newsletter.delivery.ledger", "newsletter.delivery.providers"),
    ("newsletter.delivery.status", "newsletter.delivery.providers"),
    ("newsletter.delivery.recovery", "newsletter.delivery.providers"),
    ("newsletter.delivery.pacing", "newsletter.delivery.providers"),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every newsletter module `path` imports, at any depth (TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m == "newsletter" or m.startswith("newsletter.")}


def graph(root: Path) -> dict[str, set[str]]:
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: imports_of(path, name) & set(modules) for name, path in modules.items()}


def rank(module: str) -> int:
    parts = module.split(".")
    return RANKS[parts[1] if len(parts) > 1 else "__init__"]


def violations(edges: dict[str, set[str]]) -> list[str]:
    problems = []
    for importer, imported in sorted(edges.items()):
        for target in sorted(imported):
            if rank(target) > rank(importer):
                problems.append(f"{importer} imports {target}, a later stage")
            for a, b in FORBIDDEN:
                if importer.startswith(a) and target.startswith(b) and not target.startswith(a):
                    problems.append(f"{importer} imports {target}")
            private = [p for p in target.split(".") if p.startswith("_") and p != "__init__"]
            owner = target.rpartition(".")[0]
            if private and not importer.startswith(owner + ".") and importer != owner:
                problems.append(f"{importer} imports {target}, private to {owner}")
    return problems


def test_every_top_level_part_has_a_rank() -> None:
    parts = {p.stem if p.is_file() else p.name for p in (SRC / "newsletter").iterdir()}
    parts -= {"__pycache__", "_data", "py"}
    assert parts <= set(RANKS), parts - set(RANKS)


def test_imports_point_backwards_along_the_pipeline() -> None:
    assert violations(graph(SRC)) == []


def test_the_check_sees_a_backward_import(tmp_path: Path) -> None:
    package = tmp_path / "newsletter"
    for name, text in {
        "__init__.py": "",
        "compose/__init__.py": "",
        "compose/render.py": "from newsletter.delivery.engine import send_issue\n",
        "delivery/__init__.py": "",
        "delivery/engine.py": "from ..compose import render\n",
        "delivery/ledger.py": "from newsletter.delivery.providers import Status\n",
        "delivery/providers/__init__.py": "from newsletter.delivery import engine\n",
        "delivery/providers/_http.py": "",
        "cli/__init__.py": "from newsletter.delivery.providers._http import make_client\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    edges = graph(tmp_path)
    assert "newsletter.compose.render" in edges["newsletter.delivery.engine"]  # relative import
    assert violations(edges) == [
        "newsletter.cli imports newsletter.delivery.providers._http, private to "
        "newsletter.delivery.providers",
        "newsletter.compose.render imports newsletter.delivery.engine, a later stage",
        "newsletter.delivery.ledger imports newsletter.delivery.providers",
        "newsletter.delivery.providers imports newsletter.delivery.engine",
    ]
