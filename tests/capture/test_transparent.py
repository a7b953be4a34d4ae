"""Under the zero-code hooks, every patched callable looks like the original to introspection, pickles
like it, and code that rebuilds objects from signatures (Lightning's sampler injection) still works."""

from __future__ import annotations

import functools
import inspect
import pickle
from typing import Any, Callable

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from throughput.capture.hooks import Instrumentation
from throughput.capture.profiler import Profiler

# C methods of torch's immutable TensorBase pickle as getattr(TensorBase, name); a function wrapper pickles
# by module and qualified name, so these two are named as torch.Tensor's (``torch``, ``Tensor.to``), the
# one difference an introspecting script can see (documented in docs/profile.md).
RENAMED = {"Tensor.to", "Tensor.cuda"}


def _outcome(fn: Callable[[], Any]) -> str:
    try:
        return repr(fn())
    except Exception as e:  # the same failure (type and message) counts as the same view
        return f"{type(e).__name__}: {e}"


def _pickles(obj: Any) -> str:
    try:
        return "ok" if pickle.loads(pickle.dumps(obj)) is obj else "loads another object"
    except Exception as e:
        return type(e).__name__


def view(obj: Any) -> dict[str, Any]:
    """What inspect (and friends) see of a callable."""
    return {"signature": _outcome(lambda: inspect.signature(obj)),
            "__name__": getattr(obj, "__name__", None), "__qualname__": getattr(obj, "__qualname__", None),
            "__doc__": getattr(obj, "__doc__", None), "__module__": getattr(obj, "__module__", None),
            "annotations": _outcome(lambda: inspect.get_annotations(obj)) if callable(obj) else None,
            "unwrapped": inspect.unwrap(obj) if hasattr(obj, "__wrapped__") else obj,
            "vars": sorted(k for k in getattr(obj, "__dict__", {}) if k != "__wrapped__")}


def _label(owner: Any, name: str) -> str:
    return f"{getattr(owner, '__qualname__', None) or owner.__name__}.{name}"


def _installed() -> Instrumentation:
    return Instrumentation(Profiler(device="cpu")).install()


def test_every_patch_target_looks_and_pickles_like_the_original() -> None:
    pytest.importorskip("safetensors.torch")           # so that its save functions are walked too
    inst = _installed()
    targets = inst.patched()
    profiled = {(id(o), n): (view(getattr(o, n)), _pickles(getattr(o, n))) for o, n in targets}
    inst.remove()
    inst.prof.stop()
    labels = {_label(o, n) for o, n in targets}
    assert {"Module.__call__", "Tensor.backward", "torch.autograd.backward", "DataLoader.__init__",
            "torch.save", "Optimizer.zero_grad", "Optimizer.__init__",
            "torch.nn.utils.clip_grad_norm_", "Tensor.to", "safetensors.torch.save_file"} <= labels
    for owner, name in targets:
        plain_view, plain_pickle = view(getattr(owner, name)), _pickles(getattr(owner, name))
        seen, pickled = profiled[(id(owner), name)]
        if _label(owner, name) in RENAMED:
            assert (seen["__module__"], seen["__qualname__"]) == ("torch", _label(owner, name))
            seen = dict(seen, __module__=plain_view["__module__"], __qualname__=plain_view["__qualname__"])
        assert seen == plain_view, _label(owner, name)
        assert pickled == plain_pickle == "ok", _label(owner, name)


def test_torch_save_pickles_under_the_profiler(tmp_path: Any) -> None:
    inst = _installed()
    try:
        assert pickle.loads(pickle.dumps(torch.save)) is torch.save
        partial = pickle.loads(pickle.dumps(functools.partial(torch.save, {"w": 1})))
        partial(tmp_path / "w.pt")
    finally:
        inst.remove()
        session = inst.prof.stop()
    assert torch.load(tmp_path / "w.pt") == {"w": 1}
    assert [sp.phase for sp in session.spans] == ["checkpoint"]


def rebuild_like_a_framework(loader: DataLoader[Any], **replace: Any) -> DataLoader[Any]:
    """Re-create a DataLoader from its ``__init__`` signature, taking each parameter's value from the
    instance's attribute of the same name (the mechanism of Lightning's sampler injection): the bound
    ``__init__``'s parameters, plus ``DataLoader.__init__``'s when it takes ``**kwargs``, less the one
    named ``self``; a required parameter without such an attribute cannot be rebuilt."""
    params = dict(inspect.signature(loader.__init__).parameters)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        params.update(inspect.signature(DataLoader.__init__).parameters)
    params.pop("self", None)
    params_list = list(params.values())
    attrs = {k: v for k, v in vars(loader).items() if not k.startswith("_")}
    kwargs: dict[str, Any] = {}
    missing = []
    for p in params_list:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in replace:
            kwargs[p.name] = replace[p.name]
        elif p.name in attrs:
            kwargs[p.name] = attrs[p.name]
        elif p.default is p.empty:
            missing.append(p.name)
    if missing:
        raise ValueError(f"cannot rebuild the DataLoader: missing attributes are {missing}")
    if kwargs.get("batch_sampler") is not None:       # batch_size etc. were derived from it: not both
        kwargs.pop("batch_sampler")
    return type(loader)(**kwargs)


def test_a_loader_rebuilt_from_its_init_signature_as_frameworks_do() -> None:
    data = TensorDataset(torch.arange(8.0))
    inst = _installed()
    try:
        loader = DataLoader(data, batch_size=4, shuffle=False)
        sampler = torch.utils.data.SequentialSampler(data)
        rebuilt = rebuild_like_a_framework(loader, sampler=sampler, shuffle=False)
        batches = [b[0].tolist() for b in rebuilt]
    finally:
        inst.remove()
        inst.prof.stop()
    assert batches == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    assert rebuilt.sampler is sampler


def test_the_rebuild_helper_fails_on_the_old_wrapper_signature() -> None:
    """The helper above is a real check: a (loader, *args, **kwargs) wrapper, as before, breaks it."""
    orig = DataLoader.__init__

    def __init__(loader: Any, *args: Any, **kwargs: Any) -> None:
        orig(loader, *args, **kwargs)

    loader = DataLoader(TensorDataset(torch.arange(4.0)), batch_size=2)
    DataLoader.__init__ = __init__  # type: ignore[method-assign]
    try:
        with pytest.raises(ValueError, match=r"missing attributes are \['loader'\]"):
            rebuild_like_a_framework(loader)
    finally:
        DataLoader.__init__ = orig  # type: ignore[method-assign]
