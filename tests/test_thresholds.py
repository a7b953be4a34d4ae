"""One table of thresholds (throughput/thresholds.py): nothing else in the package carries a literal
threshold of its own, and the advisor's docs cite every entry with its value."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from throughput.thresholds import THRESHOLDS

PACKAGE = Path(__file__).resolve().parent.parent / "throughput"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "advisor.md"
# Names that say "this number decides something": a module- or class-level constant named like this
# belongs in the table. (Versions, timeouts, sizes and counts are not thresholds.)
THRESHOLD_NAME = re.compile(r"_(SHARE|FRACTION|RATIO|MARGIN|SIGMAS|GAIN|BAND|TOLERANCE|MIN|MIN_BATCH|WAIT|"
                            r"THRESHOLD|IMPROVEMENT|RISE|DROP|Z|CHANCE)$")
# Float literals a comparison may hold: 0 and 1, 2 (a formula's factor, Daly's delta >= 2M), and
# numerical tolerances (1e-3 of a value, 1e-12): none of them is a decision anyone would tune.
HARMLESS = {0.0, 1.0, 2.0}
TOLERANCE_BELOW = 2e-3


def _modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "thresholds.py"]


def _constants(tree: ast.Module) -> list[tuple[str, object, int]]:
    """(name, literal value, line) of module- and class-level assignments of a number."""
    out = []
    bodies = [tree.body] + [n.body for n in tree.body if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for node in body:
            if isinstance(node, ast.Assign):
                names, value = [t.id for t in node.targets if isinstance(t, ast.Name)], node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                names, value = [node.target.id], node.value
            else:
                continue
            if isinstance(value, ast.Constant) and type(value.value) in (int, float):
                out += [(n, value.value, node.lineno) for n in names]
    return out


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_threshold_constant_outside_the_table(module: Path) -> None:
    tree = ast.parse(module.read_text())
    bad = [f"{name} = {value} (line {line})" for name, value, line in _constants(tree)
           if THRESHOLD_NAME.search(name.upper()) and name.isupper()]
    assert not bad, f"{module}: thresholds belong in throughput/thresholds.py: {bad}"
    # in the layers that decide (analysis, advisor): dataclass fields with a float default (e.g. the old
    # SearchSettings.min_gain = 0.03) must take it from the table too
    if module.parent.name not in ("analysis", "advisor"):
        return
    fields = [f"{n.target.id} = {n.value.value} (line {n.lineno})" for c in tree.body if isinstance(c, ast.ClassDef)
              for n in c.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
              and isinstance(n.value, ast.Constant) and type(n.value.value) is float and n.value.value not in HARMLESS]
    assert not fields, f"{module}: float defaults that decide something belong in thresholds.py: {fields}"


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_literal_threshold_in_a_comparison(module: Path) -> None:
    hits = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Compare):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and type(sub.value) is float and sub.value not in HARMLESS \
                        and abs(sub.value) >= TOLERANCE_BELOW:
                    hits.append(f"{sub.value} (line {node.lineno})")
    assert not hits, f"{module}: compares against literal thresholds {hits}; name them in throughput/thresholds.py"


def test_the_grep_catches_a_planted_threshold() -> None:
    planted = ast.parse("INPUT_BOUND_SHARE = 0.3\nif share >= 0.25:\n    pass\n")
    assert [n for n, _, _ in _constants(planted) if THRESHOLD_NAME.search(n)] == ["INPUT_BOUND_SHARE"]
    assert any(isinstance(s, ast.Constant) and s.value == 0.25 for n in ast.walk(planted) if isinstance(n, ast.Compare)
               for s in ast.walk(n))


def test_every_threshold_is_cited_in_the_docs_with_its_value() -> None:
    docs = DOCS.read_text()
    for name, value in THRESHOLDS.items():
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/advisor.md does not cite {name}"
        assert f"| {value:g} |" in row, f"docs/advisor.md cites {name} with another value: {row}"


def test_the_three_input_bound_numbers_are_now_two_named_ones() -> None:
    # the verdict, the hygiene finding and the search's precision skip use one number; the rule and the
    # search's worker sweep another, both from the table
    import importlib

    from throughput.advisor.space import SearchSettings
    from throughput.thresholds import DATA_WAIT_WORTH_WORKERS, INPUT_BOUND_SHARE
    verdict = importlib.import_module("throughput.analysis.verdict")
    findings = importlib.import_module("throughput.analysis.findings")
    assert verdict.INPUT_BOUND_SHARE is INPUT_BOUND_SHARE and findings.INPUT_BOUND_SHARE is INPUT_BOUND_SHARE
    assert SearchSettings().data_wait_done == DATA_WAIT_WORTH_WORKERS
