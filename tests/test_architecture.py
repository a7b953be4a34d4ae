"""Architecture rules as tests: layers stay torch-free and dependencies point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "throughput"
LEAVES = ("knobs.py", "thresholds.py", "finding.py")   # import nothing from throughput; anyone may import them
TORCH_FREE = ("session", "analysis", "report", "timing/clock.py", "advisor/rules.py", "advisor/checkpoint.py",
              "advisor/memory.py", "advisor/plan.py", "packing/algorithms.py", *LEAVES)
# layer -> packages it must not import
FORBIDDEN = {
    "session": ("capture", "analysis", "report", "advisor", "cli", "loop"),
    "analysis": ("capture", "report", "advisor", "cli", "loop"),
    "report": ("capture", "advisor", "cli", "loop"),
    "capture": ("report", "advisor", "cli", "loop"),
    "packing": ("capture", "analysis", "report", "advisor", "cli", "loop"),
    "telemetry": ("report", "advisor", "cli", "loop"),   # part of capture: runs in the user process
    "loop": ("advisor", "cli", "report"),
    "advisor": ("cli",),
}


def _modules(entry: str) -> list[Path]:
    path = PACKAGE / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else ([path] if path.exists() else [])


def imported_names(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", [m for e in TORCH_FREE for m in _modules(e)], ids=str)
def test_module_does_not_import_torch(module: Path) -> None:
    tops = {n.split(".")[0] for n in imported_names(module)}
    assert "torch" not in tops, f"{module} must stay torch-free"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_dependencies_point_one_way(layer: str) -> None:
    for module in _modules(layer):
        for name in imported_names(module):
            parts = name.split(".")
            if parts[0] == "throughput" and len(parts) > 1:
                assert parts[1] not in FORBIDDEN[layer], f"{module} imports {name}"


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_modules_import_nothing_from_throughput(leaf: str) -> None:
    names = imported_names(PACKAGE / leaf)
    assert not [n for n in names if n.split(".")[0] == "throughput"], f"{leaf} must stay a leaf"
