"""Reversible, transparent monkey-patching: every attribute set here is restored by ``Patcher.restore()``.

A wrapper made by :func:`transparent` looks like the original to introspection (name, qualname, doc,
module, annotations, ``__wrapped__``, so ``inspect.signature`` gives the original's), pickles by the
same reference where it is installed under the original's name, and stays out of torch.compile's
sight (``capture/compiler.py``). Wrappers are remembered in a weak set rather than tagged, so their
``__dict__`` is the original's too; ``leftover_patches`` lists any still installed after a run.

Modules that a script may import later (safetensors, torch.distributed.checkpoint, whose import alone
takes a second) are patched the moment they are imported, through a meta-path finder, so that even
``from safetensors.torch import save_file`` binds the wrapper.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import weakref
from typing import Any, Callable, Iterator, Sequence

from throughput.capture.compiler import hide_calls, hide_frame

_MISSING = object()
_WRAPPERS: "weakref.WeakSet[Callable[..., Any]]" = weakref.WeakSet()


def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Remember a wrapper or hook so that leftover checks recognise it (a bound method: its function)."""
    _WRAPPERS.add(getattr(fn, "__func__", fn))
    return fn


def is_wrapper(obj: Any) -> bool:
    if not isinstance(obj, (types.FunctionType, types.MethodType)) and not _is_around(obj):
        return False  # namespaces such as torch.ops answer every getattr
    return getattr(obj, "__func__", obj) in _WRAPPERS


def _is_around(obj: Any) -> bool:
    """A C wrapper (``_bypass.Around``), when that helper was loaded."""
    around = getattr(sys.modules.get("throughput.capture._bypass"), "Around", None)
    return around is not None and isinstance(obj, around)


def transparent(original: Callable[..., Any], wrapper: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``wrapper`` the original's identity (``functools.update_wrapper``), mark it, and keep
    Dynamo from compiling its frame. Attributes the original lacks (a C method has no ``__module__``
    and no annotations) are blanked on the wrapper rather than left as ours."""
    if isinstance(wrapper, types.FunctionType):
        functools.update_wrapper(wrapper, original)
        if not hasattr(original, "__annotations__"):
            wrapper.__annotations__ = {}
        hide_frame(wrapper)
    else:   # a C wrapper (``_bypass.Around``): no __dict__ to update, as the C method it stands for
        for attr in functools.WRAPPER_ASSIGNMENTS:
            if hasattr(original, attr):
                setattr(wrapper, attr, getattr(original, attr))
        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        # a Python original's function attributes, as the function has them: torch.compile(module)
        # asks for the module's ``__call__.__code__`` before it compiles anything (and marks that code
        # always to compile); inspect and libraries read ``__defaults__``, ``__globals__``
        for field in ("__code__", "__defaults__", "__kwdefaults__", "__globals__", "__closure__"):
            if hasattr(original, field):
                setattr(wrapper, field, getattr(original, field))
    if not hasattr(original, "__module__"):
        wrapper.__module__ = None  # type: ignore[assignment]  # as a builtin method reads: no module
    return mark(wrapper)


def frameless(original: Callable[..., Any], enter: Callable[..., Any], leave: Callable[[Any], Any],
              fail: Callable[[Any], Any] | None = None) -> Any:
    """``transparent(original, _bypass.Around(original, enter, leave, fail))``: the original called with no
    frame of ours around it, or None where the C helper does not run (use the Python wrapper then)."""
    from throughput.capture.recorder import bypass_type
    around = bypass_type("Around")
    return None if around is None else transparent(original, around(original, enter, leave, fail))


class Patcher:
    """Sets attributes and remembers how to undo each one (in reverse order)."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []
        self._handles: list[Any] = []
        self._finder: _PatchOnImport | None = None
        self._compile_actions: list[Callable[[], None]] = []

    def set(self, owner: Any, name: str, value: Any) -> Any:
        """Replace ``owner.name`` with ``value``; returns the original (looked up the normal way)."""
        original = getattr(owner, name)
        self._remember(owner, name)
        setattr(owner, name, value)
        return original

    def adopt(self, owner: Any, name: str, original: Any) -> None:
        """``owner.name`` already holds a wrapper (bound by an import while patched): restore ``original``."""
        self._undo.append((owner, name, original))

    def _remember(self, owner: Any, name: str) -> None:
        own = owner.__dict__.get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        self._undo.append((owner, name, own))

    def revert(self, owner: Any, name: str) -> None:
        """Undo the newest patch of ``owner.name`` now (nothing if there is none)."""
        for i in range(len(self._undo) - 1, -1, -1):
            if self._undo[i][0] is owner and self._undo[i][1] == name:
                _, _, own = self._undo.pop(i)
                _put_back(owner, name, own)
                return

    def keep(self, handle: Any) -> None:
        """Remember a removable hook handle (anything with ``remove()``)."""
        self._handles.append(handle)

    def on_import(self, module_name: str, apply: Callable[[types.ModuleType], None]) -> None:
        """Run ``apply(module)`` now if ``module_name`` is imported, else right after its import runs
        (before the importer binds any name from it), after any ``apply`` given for it before. Stops
        watching on ``restore()``."""
        module = sys.modules.get(module_name)
        if module is not None:
            apply(module)
            return
        if self._finder is None:
            self._finder = _PatchOnImport()
            sys.meta_path.insert(0, self._finder)
        self._finder.watch.setdefault(module_name, []).append(apply)

    def set_frameless(self, owner: Any, names: Sequence[str], in_c: Any, in_python: Callable[..., Any],
                      swapped: Callable[[], None] | None = None) -> Any:
        """Install a wrapper under each of ``names`` of ``owner``: ``in_c`` (a ``_bypass.Around``: no frame
        of ours while the original runs, so warnings, ``stacklevel`` and tracebacks read as in a plain
        run) where the C helper runs, else ``in_python``. Dynamo cannot trace a call of a C wrapper, so
        when torch.compile first starts compiling (``when_compiling_starts``) ``in_python``, hidden from
        Dynamo and traced through, takes its place for the rest of the run, and ``swapped()`` is told.
        Not when ``torch._dynamo`` is imported: every torch.optim optimizer imports it as it is built.
        Returns the wrapper installed now."""
        installed = in_python if in_c is None else in_c
        for name in names:
            self.set(owner, name, installed)
        if in_c is not None:
            def to_python() -> None:
                if all(owner.__dict__.get(name) is not in_c for name in names):
                    return   # swapped at an earlier compile start
                for name in names:
                    if owner.__dict__.get(name) is in_c:
                        self.set(owner, name, in_python)
                if swapped is not None:
                    swapped()
            self.when_compiling_starts(to_python)
        return owner.__dict__.get(names[0])

    def when_compiling_starts(self, action: Callable[[], None]) -> None:
        """Run ``action()`` when torch.compile starts compiling anything, before Dynamo reads any code
        (Dynamo's start callbacks, at each compile start from when ``torch._dynamo`` is imported), until
        ``restore()``; actions run in the order given. For patches that Dynamo cannot trace or guards on:
        put back what it can before it looks."""
        hide_calls(action)
        self._compile_actions.append(action)
        if len(self._compile_actions) == 1:
            self.on_import("torch._dynamo.callback", self._watch_compiles)

    def _watch_compiles(self, callback_module: types.ModuleType) -> None:
        """One start callback for every action. ``torch._dynamo.reset()`` clears Dynamo's callbacks (a
        script may call it before compiling): the handler's ``clear`` registers ours again, or compiling
        would meet what the actions were to put back."""
        handler, actions = callback_module.callback_handler, self._compile_actions

        def started(_args: Any) -> None:
            for action in actions:
                action()

        clear = handler.clear

        def clear_keeping_ours() -> None:
            clear()
            handler.register_start_callback(started)
        hide_calls(started, clear_keeping_ours)
        handler.register_start_callback(started)
        # on this one object, not its class (nor among the patch targets: no torch API changes)
        handler.clear = functools.update_wrapper(clear_keeping_ours, clear)

        def forget() -> None:
            if handler.__dict__.get("clear") is clear_keeping_ours:
                del handler.clear
            handler.remove_start_callback(started)
        self.keep(_Registered(forget))

    def restore(self) -> None:
        """Undo everything, newest first. Safe to call twice."""
        if self._finder is not None:
            if self._finder in sys.meta_path:
                sys.meta_path.remove(self._finder)
            self._finder = None
        while self._handles:
            self._handles.pop().remove()
        while self._undo:
            _put_back(*self._undo.pop())
        self._compile_actions = []

    @property
    def active(self) -> bool:
        return bool(self._undo or self._handles)

    def targets(self) -> list[tuple[Any, str]]:
        """(owner, attribute name) of every attribute patched now, in patching order."""
        return [(owner, name) for owner, name, _ in self._undo]


def _put_back(owner: Any, name: str, own: Any) -> None:
    """``owner.name`` as it was: ``own``, or no attribute of its own (``_MISSING``)."""
    if own is _MISSING:
        try:
            delattr(owner, name)
        except AttributeError:
            pass
    else:
        setattr(owner, name, own)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds watched modules through the other finders and patches each right after it executes."""

    def __init__(self) -> None:
        self.watch: dict[str, list[Callable[[types.ModuleType], None]]] = {}
        self._finding: set[str] = set()

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        applies = self.watch.get(fullname)
        if applies is None or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        self.watch.pop(fullname, None)
        spec.loader = _ThenPatch(spec.loader, applies)
        return spec


class _ThenPatch(importlib.abc.Loader):
    """A loader that runs the real one, puts it back on the module, then applies the patch."""

    def __init__(self, loader: Any, applies: list[Callable[[types.ModuleType], None]]) -> None:
        self._loader, self._applies = loader, applies

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        if spec is not None:
            spec.loader = self._loader  # the module's spec and __loader__ read as without us
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        for apply in self._applies:
            apply(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def leftover_patches() -> list[str]:
    """Names of throughput wrappers still installed on torch (empty after a clean run)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found: list[str] = []
    for where, owner in _patch_targets(torch):
        for name, value in list(vars(owner).items()):
            if is_wrapper(value):
                found.append(f"{where}.{name}")
    import torch.nn.modules.module as mm
    import torch.optim.optimizer as oo
    for label, table in (("global forward pre-hooks", mm._global_forward_pre_hooks),
                         ("global forward hooks", mm._global_forward_hooks),
                         ("global optimizer pre-hooks", oo._global_optimizer_pre_hooks),
                         ("global optimizer post-hooks", oo._global_optimizer_post_hooks)):
        found += [label for hook in table.values() if is_wrapper(hook)]
    found += [f"{type(f).__name__} in sys.meta_path" for f in sys.meta_path if isinstance(f, _PatchOnImport)]
    module_call = vars(torch.nn.Module)["__call__"]
    bypass = getattr(sys.modules.get("throughput.capture._bypass"), "Bypass", None)
    for cls in _module_classes(torch.nn.Module):
        own = vars(cls).get("__call__")
        if own is module_call or (bypass is not None and isinstance(own, bypass)):
            found.append(f"{cls.__qualname__}.__call__ (a bypass of nn.Module's)")
    return found


def _patch_targets(torch: Any) -> Iterator[tuple[str, Any]]:
    import torch.utils.data.dataloader as dl
    yield "torch", torch
    yield "torch.Tensor", torch.Tensor
    yield "torch.autograd", torch.autograd
    yield "torch.serialization", torch.serialization
    yield "torch.nn.Module", torch.nn.Module
    yield "torch.nn.utils", torch.nn.utils
    yield "torch.nn.utils.clip_grad", torch.nn.utils.clip_grad
    yield "torch.optim.Optimizer", torch.optim.Optimizer
    yield "DataLoader", dl.DataLoader
    yield "_BaseDataLoaderIter", dl._BaseDataLoaderIter
    for name in ("safetensors.torch", "torch.distributed.checkpoint", "torch.distributed.checkpoint.state_dict_saver"):
        module = sys.modules.get(name)
        if module is not None:
            yield name, module
    for cls in _module_classes(torch.nn.Module):
        yield cls.__qualname__, cls


def _module_classes(root: type) -> Iterator[type]:
    """nn.Module and every subclass (the zero-code hooks give some of them their own ``__call__``)."""
    seen: set[type] = set()
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        if cls is not root:
            yield cls
        stack.extend(type.__subclasses__(cls))


class _Registered:
    """A handle whose ``remove()`` runs ``forget`` once (for ``Patcher.keep``)."""

    def __init__(self, forget: Callable[[], None]) -> None:
        self._forget: Callable[[], None] | None = forget

    def remove(self) -> None:
        forget, self._forget = self._forget, None
        if forget is not None:
            try:
                forget()
            except ValueError:  # removed already (a script that cleared Dynamo's callbacks)
                pass
