"""Architecture rules as tests: the import table of docs/architecture.md holds, there are no import
cycles, and the layers that must stay torch-free do.

The table is read from the docs themselves (the rows whose first cell is a backticked
``throughput/...``), so the docs and this test cannot drift apart."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "throughput"
DOCS = ROOT / "docs" / "architecture.md"
LEAVES = ("knobs", "thresholds", "finding", "folders")   # import nothing from throughput (their rows say "-"); anyone may import them
TORCH_FREE = ("session", "analysis", "report", "timing/clock.py", "advisor/rules.py", "advisor/checkpoint.py",
              "advisor/memory.py", "advisor/plan.py", "packing/algorithms.py", "machine.py", "hardware.py",
              "validation", *(f"{leaf}.py" for leaf in LEAVES))
# Known breaches that landed from other branches while this table was being made true, each with who
# owns the fix. Nothing else may be added here: a new breach fails, and a listed one that is fixed fails
# too (so the list empties itself).
KNOWN_IMPORTS: dict[tuple[str, str], str] = {}
KNOWN_CYCLES: list[list[str]] = []
_ROW = re.compile(r"^\|\s*`throughput/([\w.]+?)/?`\s*\|.*\|\s*([^|]+?)\s*\|\s*$")


def _unit(module: Path) -> str:
    """The architecture unit a file belongs to: its top package, or the top-level module's name."""
    rel = module.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@functools.cache
def units() -> tuple[str, ...]:
    """The package's units, sorted; the package is walked once per test process (the docs' table asks
    for them once per row)."""
    return tuple(sorted({_unit(m) for m in PACKAGE.rglob("*.py")}))


def documented_table(text: str | None = None) -> dict[str, frozenset[str]]:
    """unit -> units it may import, from the docs' table. "-" is none; "everything" and
    "everything but a, b" name the rest relative to all units."""
    table: dict[str, frozenset[str]] = {}
    for line in (text if text is not None else DOCS.read_text()).splitlines():
        m = _ROW.match(line)
        if m is None:
            continue
        unit, allowed = m.group(1).removesuffix(".py"), re.sub(r"\([^)]*\)", "", m.group(2)).strip()
        others = set(units()) - {unit}
        if allowed == "-":
            table[unit] = frozenset()
        elif allowed == "everything":
            table[unit] = frozenset(others)
        elif allowed.startswith("everything but "):
            table[unit] = frozenset(others - {a.strip() for a in allowed[len("everything but "):].split(",")})
        else:
            table[unit] = frozenset(a.strip() for a in allowed.split(",") if a.strip())
    return table


def imported_names(module: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (``from a import b`` gives a.b too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").relative_to(ROOT).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """throughput module -> throughput modules it imports, without edges to its own parent packages
    (importing a submodule always runs its package's __init__: that is not a cycle)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {n for n in imported_names(path) if n in modules and n != name and n not in parents}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _files(entry: str) -> list[Path]:
    path = PACKAGE / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else ([path] if path.exists() else [])


def test_the_docs_table_names_every_unit_of_the_package() -> None:
    assert tuple(sorted(documented_table())) == units()


@pytest.mark.parametrize("unit", units())
def test_imports_follow_the_docs_table(unit: str) -> None:
    allowed = documented_table()[unit] | {unit} | (set(LEAVES) if unit not in LEAVES else set())
    known = set(units())
    for module in PACKAGE.rglob("*.py"):
        if _unit(module) != unit:
            continue
        for name in imported_names(module):
            parts = name.split(".")
            if any(str(module.relative_to(ROOT)) == where and (name == what or name.startswith(what + "."))
                   for where, what in KNOWN_IMPORTS):
                assert parts[1] not in allowed, f"{module} may import {name} now: drop it from KNOWN_IMPORTS"
                continue
            if parts[0] == "throughput" and len(parts) > 1 and parts[1] in known:
                assert parts[1] in allowed, f"{module.relative_to(ROOT)} imports {name}; docs/architecture.md " \
                                            f"lets {unit} import only {sorted(allowed - {unit}) or 'nothing'}"


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == KNOWN_CYCLES


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_table_parser_reads_the_forms_the_docs_use() -> None:
    text = ("| `throughput/capture` | runs in the user process | timing, session (records) |\n"
            "| `throughput/cli` | parses | everything |\n| `throughput/demo` | demo | everything but cli |\n"
            "| `throughput/timing` | clocks | - |\n")
    table = documented_table(text)
    assert table["capture"] == {"timing", "session"} and table["timing"] == frozenset()
    assert table["cli"] == set(units()) - {"cli"} and table["demo"] == set(units()) - {"demo", "cli"}


@pytest.mark.parametrize("module", [m for e in TORCH_FREE for m in _files(e)], ids=str)
def test_module_does_not_import_torch(module: Path) -> None:
    tops = {n.split(".")[0] for n in imported_names(module)}
    assert "torch" not in tops, f"{module} must stay torch-free"
