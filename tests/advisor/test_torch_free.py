"""The advisor's rules side stays torch-free, and ``throughput advise RUN.json`` never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_architecture import imported_names

ADVISOR = Path(__file__).resolve().parents[2] / "throughput" / "advisor"
TORCH_FREE = ("checkpoint.py", "memory.py", "outcome.py", "plan.py", "rules.py", "search.py", "space.py",
              "apply.py", "candidates.py", "confirm.py", "stream_check.py", "allocator_trial.py")


@pytest.mark.parametrize("name", TORCH_FREE)
def test_module_does_not_import_torch(name: str) -> None:
    tops = {n.split(".")[0] for n in imported_names(ADVISOR / name)}
    assert "torch" not in tops, f"advisor/{name} must stay torch-free"


def test_rules_only_cli_path_imports_no_torch(tmp_path: Path) -> None:
    code = ("import sys\nfrom throughput.cli.main import main\n"
            f"rc = main(['advise', {str(tmp_path / 'missing.json')!r}])\n"
            "assert rc == 2 and 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
