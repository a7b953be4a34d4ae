"""Every Python code block in README.md and docs/*.md runs, or says why it cannot.

Blocks of one file run in order in one namespace (like a notebook), in a fresh working folder, after
that file's SETUP below: the small real objects its prose assumes (a model, a loader, a tokenizer...).
A block that cannot run here is marked on the line just before its opening fence with

    <!-- not runnable: <the reason> -->

and the test checks that the reason is given. A new block in any of these files runs with no change here,
or fails with the file and line to look at.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUNNABLE = re.compile(r"^\s*<!--\s*not runnable:\s*(?P<reason>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\S*)\s*$")

# The objects each file's prose takes as given, as small as they can be and still real.
SETUP: dict[str, str] = {
    "README.md": """
import types, torch
class _Model(torch.nn.Module):                 # returns an object with .loss, as the example expects
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
    def forward(self, batch):
        return types.SimpleNamespace(loss=self.lin(batch).pow(2).mean())
model = _Model()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader(torch.randn(24, 4), batch_size=4)
""",
    "docs/distributed.md": "import throughput\n",
    "docs/packing.md": """
import random, torch
random.seed(0)
texts = [" ".join("w" * random.randint(1, 6) for _ in range(random.randint(5, 300))) for _ in range(40)]
tokenizer = lambda text: {"input_ids": [len(w) for w in text.split()]}     # one id per word
model = lambda input_ids, position_ids, attn_mask: torch.randn(*input_ids.shape, 8, requires_grad=True)
docs = [tokenizer(t)["input_ids"] for t in texts]
stream, rank, world, epochs = docs, 0, 1, 2
lengths = [len(d) for d in docs]
dataset = [{"input_ids": d} for d in docs]                  # a plain list of examples (no datasets needed)
batches_of_lengths = [lengths[i:i + 10] for i in range(0, len(lengths), 10)]
class _Opt:
    def step(self): pass
    def zero_grad(self): pass
optimizer, accum_steps = _Opt(), 2
def _micro_batches():                          # packed rows, 2 per micro-batch, with their masks
    from throughput.packing import PackedDataset, PackingCollator
    rows, collate = PackedDataset(docs, row_len=64), PackingCollator(64, attn_mask=True)
    while True:
        for i in range(0, len(rows) - 1, 2):
            yield collate([rows[i], rows[i + 1]])
it = _micro_batches()
""",
    "docs/telemetry.md": """
import torch
model = torch.nn.Linear(8, 2)
x, y = torch.randn(4, 8), torch.randn(4, 2)
loss_fn = torch.nn.functional.mse_loss
""",
}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int              # 1-based line of the opening fence
    code: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group("lang") == "python":
            start, indent = i, m.group("indent")
            i += 1
            body = []
            while i < len(lines) and not (FENCE.match(lines[i]) and lines[i].strip() == "```"):
                body.append(lines[i])
                i += 1
            previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            marker = NOT_RUNNABLE.match(previous)
            blocks.append(Block(file=path, line=start + 1, code=textwrap.dedent("\n".join(body)),
                                skip_reason=marker.group("reason") if marker else None))
        i += 1
    return blocks


ALL = [b for path in DOCS for b in python_blocks(path)]


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from throughput.capture.profiler import active_profiler

    rel = str(path.relative_to(REPO))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    exec(compile(SETUP.get(rel, ""), f"<setup of {rel}>", "exec"), namespace)
    try:
        for block in python_blocks(path):
            if block.skip_reason is None:
                exec(compile(block.code, block.id, "exec"), namespace)
    finally:
        leaked = active_profiler()
        if leaked is not None:
            leaked.stop()
    assert leaked is None, f"{rel}: a block left a Profiler running"
    for saved in tmp_path.rglob("*.json"):
        if saved.name in ("run.json", "session.json"):
            from throughput.session.io import load_session
            session = load_session(saved)
            assert not session.info.partial, f"{rel}: {saved.name} is a partial session ({session.info.end.value})"


def test_not_runnable_blocks_give_a_reason() -> None:
    for block in ALL:
        if block.skip_reason is not None:
            assert len(block.skip_reason) >= 10, f"{block.id}: say why the block cannot run"


def test_every_block_is_found() -> None:
    """The fence parser sees each ```python opening (indented ones in lists too)."""
    for path in DOCS:
        opening = sum(1 for line in path.read_text().splitlines() if line.strip() == "```python")
        assert len(python_blocks(path)) == opening, path
