"""The checkpoint phase covers the saves frameworks make: torch.save, safetensors, torch.distributed.checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from throughput.capture.hooks import Instrumentation
from throughput.capture.patching import Patcher, is_wrapper, leftover_patches
from throughput.capture.profiler import Profiler
from throughput.session.session import Session


def _run(save: Any) -> Session:
    """Two optimizer steps, then ``save(model)``: the save is the only checkpoint span."""
    inst = Instrumentation(Profiler(device="cpu", warmup_steps=0)).install()
    try:
        model = nn.Linear(3, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            model(torch.randn(4, 3)).sum().backward()
            opt.step()
        save(model)
    finally:
        inst.remove()
        session = inst.prof.stop()
    return session


def _checkpoint_spans(session: Session) -> int:
    return sum(1 for sp in session.spans if sp.phase == "checkpoint")


def test_torch_save_is_checkpoint(tmp_path: Path) -> None:
    session = _run(lambda m: torch.save(m.state_dict(), tmp_path / "m.pt"))
    assert _checkpoint_spans(session) == 1
    assert set(torch.load(tmp_path / "m.pt")) == {"weight", "bias"}


def test_safetensors_save_file_and_save_model_are_checkpoint(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    session = _run(lambda m: (st.save_file(m.state_dict(), str(tmp_path / "a.safetensors")),
                              st.save_model(m, str(tmp_path / "b.safetensors"))))
    assert _checkpoint_spans(session) == 2          # save_model calls save_file: one span, not two
    assert set(st.load_file(str(tmp_path / "b.safetensors"))) == {"weight", "bias"}
    assert not is_wrapper(st.save_file) and not is_wrapper(st.save_model)    # restored


def test_distributed_checkpoint_save_is_checkpoint(tmp_path: Path) -> None:
    if not torch.distributed.is_available():
        pytest.skip("torch built without torch.distributed")
    import torch.distributed.checkpoint as dcp   # single process: no process group needed to save a folder
    session = _run(lambda m: dcp.save({"model": m.state_dict()}, checkpoint_id=str(tmp_path / "dcp")))
    assert _checkpoint_spans(session) == 1
    assert (tmp_path / "dcp" / ".metadata").exists()
    assert not is_wrapper(dcp.save) and leftover_patches() == []


def test_a_module_imported_during_the_run_is_patched_before_names_are_bound(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes ``from safetensors.torch import save_file`` (and the second-long DCP import) work:
    the patch is applied as the module finishes executing, before the importer binds its names."""
    (tmp_path / "late_saver.py").write_text("def save(x):\n    'Saves x.'\n    return x\n")
    (tmp_path / "late_user.py").write_text("from late_saver import save\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p = Patcher()
    p.on_import("late_saver", lambda module: p.set(module, "save", lambda x: ("patched", x)))
    try:
        import late_user  # type: ignore[import-not-found]
        assert late_user.save(1) == ("patched", 1)
        assert sys.modules["late_saver"].__spec__.loader.__class__.__name__ == "SourceFileLoader"
    finally:
        p.restore()
        for name in ("late_user", "late_saver"):
            sys.modules.pop(name, None)
    assert leftover_patches() == []


def test_every_patch_waiting_for_a_module_is_applied_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several hooks wait for torch._dynamo (Tensor.to, Tensor.cuda, Module.__call__, both backwards):
    a second ``on_import`` of one module replaced the first, which was then never applied."""
    (tmp_path / "late_twice.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p, applied = Patcher(), []
    p.on_import("late_twice", lambda module: applied.append(("first", module.x)))
    p.on_import("late_twice", lambda module: applied.append(("second", module.x)))
    try:
        import late_twice  # type: ignore[import-not-found]  # noqa: F401
        assert applied == [("first", 1), ("second", 1)]
    finally:
        p.restore()
        sys.modules.pop("late_twice", None)


@pytest.mark.slow
def test_distributed_checkpoint_imported_after_the_hooks_are_installed(tmp_path: Path) -> None:
    """A fresh process (importing torch.distributed.checkpoint takes about a second), as in a script."""
    import subprocess
    code = f"""
import torch
from torch import nn
from throughput.capture.hooks import Instrumentation
from throughput.capture.patching import leftover_patches
from throughput.capture.profiler import Profiler
inst = Instrumentation(Profiler(device="cpu")).install()
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import save
assert save is dcp.save is dcp.state_dict_saver.save
save({{"w": nn.Linear(2, 2).state_dict()}}, checkpoint_id={str(tmp_path / "dcp")!r})
inst.remove()
session = inst.prof.stop()
print([sp.phase for sp in session.spans], leftover_patches(), dcp.save is dcp.state_dict_saver.save)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['checkpoint'] [] True"
