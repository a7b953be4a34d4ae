"""Hypothesis strategies that damage valid JSON documents the way files get damaged, and the harness that
runs the CLI in-process and checks the contract: exit 0, or exit 2 with one line on stderr; never a
traceback; nothing written outside ``--out``.

Mutations (1 to 3 per example, at random places in the document): drop a key or item, retype a value
(string, null, bool, number, list, object), a number replaced by a huge one (1e308, 2**63, a 400-digit
integer), by NaN or +-inf, or by an odd one of the right type (0, -1, 1e15), wrong nesting (wrap a value in a list or an object, or replace a container by one of its items),
rename a key; then, for files, maybe truncate the text.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from hypothesis import strategies as st

from throughput.cli.main import main

Key = str | int
RETYPED: tuple[Any, ...] = (None, True, False, "fast", "NaN", "", -1, 0, 3.5, -2.5, [], {}, [1, "x"], {"a": 1})
HUGE: tuple[Any, ...] = (1e308, -1e308, 2**63, -(2**63) - 1, 10**30, 10**400, 5e-324)
NONFINITE: tuple[float, ...] = (float("nan"), float("inf"), float("-inf"))
EXTREME: tuple[Any, ...] = (0, 0.0, -1, -1.5, 1, 10**9, 1e-9, 1e15)   # right type, odd value
MUTATIONS = ("drop", "retype", "huge", "nonfinite", "extreme", "nest", "unnest", "rename")
NUMERIC = ("huge", "nonfinite", "extreme")   # applied to a number in the document where there is one


def node_paths(doc: Any, prefix: tuple[Key, ...] = ()) -> list[tuple[Key, ...]]:
    """Every path below the root, containers and leaves."""
    out: list[tuple[Key, ...]] = []
    items: Sequence[tuple[Key, Any]] = (list(doc.items()) if isinstance(doc, dict)
                                        else list(enumerate(doc)) if isinstance(doc, list) else [])
    for key, value in items:
        out.append(prefix + (key,))
        out.extend(node_paths(value, prefix + (key,)))
    return out


def _parent(doc: Any, path: tuple[Key, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def mutate(doc: Any, path: tuple[Key, ...], kind: str, value: Any) -> None:
    """Apply one mutation in place (``value`` is the drawn replacement, where the kind uses one)."""
    parent, key = _parent(doc, path), path[-1]
    current = parent[key]
    if kind == "drop":
        del parent[key]
    elif kind == "rename" and isinstance(parent, dict):
        parent[f"{key}_x"] = parent.pop(key)
    elif kind == "nest":
        parent[key] = [current] if value else {"value": current}
    elif kind == "unnest" and isinstance(current, (list, dict)) and current:
        parent[key] = current[0] if isinstance(current, list) else next(iter(current.values()))
    else:   # retype, huge, nonfinite (and rename/unnest where they do not apply)
        parent[key] = value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@st.composite
def mutated_document(draw: st.DrawFn, doc: Any) -> Any:
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = node_paths(doc)
        if not paths:
            break
        kind = draw(st.sampled_from(MUTATIONS))
        numbers = [p for p in paths if _is_number(_parent(doc, p)[p[-1]])]
        path = draw(st.sampled_from(numbers if kind in NUMERIC and numbers else paths))
        pool = {"huge": HUGE, "nonfinite": NONFINITE, "extreme": EXTREME}.get(kind, RETYPED)
        value = draw(st.booleans()) if kind == "nest" else copy.deepcopy(draw(st.sampled_from(pool)))
        mutate(doc, path, kind, value)
    return doc


@st.composite
def mutated_text(draw: st.DrawFn, doc: Any) -> str:
    """A mutated document as file text (NaN/Infinity written as JSON5-style literals, as Python does),
    truncated in one example out of eight."""
    text = json.dumps(draw(mutated_document(doc)), allow_nan=True)
    if draw(st.integers(0, 7)) == 0:
        text = text[: draw(st.integers(1, max(1, len(text) - 1)))]
    return text


# A recipe that meets the contract and imports nothing (its functions never run: training is stubbed).
LIGHT_RECIPE = ("def build_model(config): raise AssertionError('stubbed run')\n"
                "def build_datasets(config): raise AssertionError('stubbed run')\n"
                "def loss_fn(model, batch): raise AssertionError('stubbed run')\n")


class Reached(Exception):
    """Raised by a stubbed work function: every argument was accepted and the real work would start."""


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run_cli(argv: Sequence[str]) -> tuple[int | str, str, str, list[str]]:
    """``main(argv)`` in this process: (status or "reached", stdout, stderr, warning messages)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status: int | str = main(list(argv))
        except SystemExit as e:            # --help and friends
            status = e.code if isinstance(e.code, int) else 0
        except Reached:
            status = "reached"
    return status, out.getvalue(), err.getvalue(), [str(w.message) for w in caught]


def check_contract(argv: Sequence[str], root: Path, allowed: Sequence[Path] = ()) -> int | str:
    """Run ``argv`` under ``root`` (its working folder) and assert the contract. ``allowed``: the paths
    (the command's --out) under which files may appear or change."""
    before = snapshot(root)
    with in_folder(root):
        status, _, err, caught = run_cli(argv)
    assert status in (0, 2, "reached"), (argv, status, err)
    if status == 2:
        assert err.count("\n") == 1 and err.startswith("throughput: error: "), (argv, err)
        assert not caught, (argv, caught)
    assert "Traceback" not in err, (argv, err)
    after = snapshot(root)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    # Python's own bytecode cache beside an imported recipe is the interpreter's doing, as it is for
    # `python -c "import recipe"`; everything else outside --out would be ours
    outside = [p for p in changed if not any((root / p).is_relative_to(a) for a in allowed)
               and "__pycache__" not in Path(p).parts]
    assert not outside, (argv, "written outside --out:", sorted(outside))
    return status
