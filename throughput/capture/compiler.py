"""Keeping the zero-code wrappers out of torch.compile's sight.

A patched callable must give ``torch.compile`` the same graphs, graph breaks and recompiles as the
original. Two rules make that so:

- Every wrapper asks :func:`is_compiling` first. While Dynamo traces a caller it inlines the wrapper,
  sees that constant and traces the original call exactly as it would unpatched; nothing of ours
  (counters, thread checks, clock reads) is traced, so nothing of ours is guarded on.
- When a compiled function breaks its graph and runs a wrapper eagerly, Dynamo's frame hook is still
  on and would try to compile the wrapper's frame and every recording function it calls (each one a
  compiled frame, a graph break on ``threading.get_ident`` and warnings a plain run never prints).
  :func:`hide_frame` makes Dynamo run a wrapper's frame as it is (the original it calls is still
  seen, as in a plain run); :func:`hide_calls` makes it run a recording function and everything that
  function calls as they are.

Both set Dynamo's per-code execution strategy once, when the hooks are installed; nothing is paid per
call. That strategy is a private torch interface (torch >= 2.6): where it is missing the functions do
nothing and a compiled run behaves as before these rules (the wrappers still run the original).
"""

from __future__ import annotations

import types
from typing import Any, Callable

import torch

# ``is_dynamo_compiling`` is one Python frame that returns False (``is_compiling`` is two); Dynamo folds
# either to True while it traces. Older torch has only ``is_compiling`` (torch < 2.3: neither).
def _never() -> bool:
    return False


is_compiling: Callable[[], bool] = (getattr(torch.compiler, "is_dynamo_compiling", None)
                                    or getattr(torch.compiler, "is_compiling", None) or _never)


def _strategies() -> tuple[Any, Any, Any] | None:
    try:
        from torch._C._dynamo.eval_frame import _FrameAction, _FrameExecStrategy, set_code_exec_strategy
    except ImportError:
        return None
    return set_code_exec_strategy, _FrameExecStrategy, _FrameAction


def _code(fn: Callable[..., Any]) -> types.CodeType | None:
    fn = getattr(fn, "__func__", fn)
    return getattr(fn, "__code__", None)


def hide_frame(fn: Callable[..., Any]) -> None:
    """Dynamo never compiles a frame of ``fn``'s code, but still compiles what ``fn`` calls (as it
    would have compiled the original's callees) and still inlines ``fn`` when tracing a caller."""
    found, code = _strategies(), _code(fn)
    if found is not None and code is not None:
        set_strategy, strategy, action = found
        set_strategy(code, strategy(action.SKIP, action.DEFAULT))


def hide_calls(*fns: Callable[..., Any]) -> None:
    """Dynamo compiles neither a frame of these functions nor any frame they call: for the recording
    side of a wrapper, which never calls user code."""
    found = _strategies()
    if found is None:
        return
    set_strategy, strategy, action = found
    for fn in fns:
        code = _code(fn)
        if code is not None:
            set_strategy(code, strategy(action.SKIP, action.SKIP))
