"""The package's import graph: stages import only what comes before them, and nothing loops.

Read from the source (an AST walk over every ``import`` and ``from ... import``, function-level
ones included: a lazy import is still a dependency). Each module belongs to its top-level
subpackage (``genoforge/baking/bake.py`` -> ``baking``) or, for the top-level modules, to itself
(``genoforge/io.py`` -> ``io``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "genoforge"

# Shared helpers every part may use.
BASE = {"errors", "io", "console", "config", "data"}
# What each part may import besides BASE. ``genes`` is the domain layer every stage shares: FASTA,
# GFF3/GTF and gene models, the token inventory, the target codec and grammar, packed shards and the
# manifest, the split, per-base classes and structure statistics; it imports no stage. ``baking``
# only bakes: no stage imports it (only the command layer runs it).
ALLOWED = {
    "genes": set(),
    "tokenizer": {"genes"},
    "baking": {"genes", "tokenizer"},
    "model": {"genes", "tokenizer"},
    "evaluation": {"genes"},
    "inference": {"genes", "tokenizer", "model"},
    "training": {"genes", "tokenizer", "model", "evaluation", "inference"},
}
COMMAND_LAYER = {"cli", "quickstart", "__main__", "__init__"}  # may import any part


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports() -> dict[str, dict[str, set[str]]]:
    """part -> imported part -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                pieces = name.split(".")
                if pieces[0] == "genoforge" and len(pieces) > 1 and pieces[1] != part:
                    graph[part][pieces[1]].add(str(path.relative_to(PACKAGE.parent)))
    return graph


def test_every_part_is_classified():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts <= BASE | set(ALLOWED) | COMMAND_LAYER, parts - (BASE | set(ALLOWED) | COMMAND_LAYER)


def test_stages_import_only_earlier_stages():
    graph = _imports()
    wrong = {
        (part, imported): sorted(files)
        for part, targets in graph.items() if part in ALLOWED
        for imported, files in targets.items() if imported not in BASE | ALLOWED[part]
    }
    assert not wrong, wrong


def test_the_shared_helpers_import_no_stage():
    graph = _imports()
    wrong = {(part, imported): sorted(files) for part, targets in graph.items() if part in BASE
             for imported, files in targets.items() if imported not in BASE}
    assert not wrong, wrong


def test_no_part_imports_the_command_layer_and_nothing_loops():
    graph = _imports()
    into_commands = {(part, imported) for part, targets in graph.items() if part not in COMMAND_LAYER
                     for imported in targets if imported in COMMAND_LAYER - {"__init__"}}
    assert not into_commands, into_commands
    # No cycle among the parts (depth-first search over the part graph).
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, {}):
            if nxt in COMMAND_LAYER:
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in list(graph):
        if node not in state and node not in COMMAND_LAYER:
            visit(node, [])
