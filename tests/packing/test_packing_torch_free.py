"""The planning half of throughput.packing stays torch-free (it runs in data pipelines without torch)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKING = Path(__file__).resolve().parents[2] / "throughput" / "packing"
TORCH_FREE = ["algorithms.py", "plan.py", "online.py", "tokens.py", "__init__.py"]


def imported_top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("throughput.packing."):
                names.add(node.module)
    return names


@pytest.mark.parametrize("name", TORCH_FREE)
def test_module_does_not_import_torch(name: str) -> None:
    names = imported_top_level_names(PACKING / name)
    assert "torch" not in names, f"throughput/packing/{name} must stay torch-free"
    for tensor_side in ("collate", "dataset", "loss"):
        assert f"throughput.packing.{tensor_side}" not in names, f"{name} imports the torch half ({tensor_side})"
