"""Every benchmark module imports and has the runner's contract (CI runs them only after the tests)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from benchmarks.run_all import BENCHMARKS

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_has_run(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "run", None)), f"benchmarks/{name}.py needs run(quick: bool) -> dict"


@pytest.mark.parametrize("path", sorted(BENCH_DIR.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_file_compiles(path: Path) -> None:
    compile(path.read_text(), str(path), "exec")
