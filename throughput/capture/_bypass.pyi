from typing import Any, Callable

class Bypass:
    """See _bypass.c: a module class's ``__call__`` that skips ``owner``'s wrapper while it is installed."""

    def __new__(cls, original: Callable[..., Any], owner: type, wrapper: Callable[..., Any]) -> Any: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any: ...

class Around:
    """See _bypass.c: ``original`` called with no Python frame of ours around it; ``enter(*args, **kwargs)``
    before (None: just the original), ``leave(token)`` after it returned, ``fail(token)`` after it raised
    (``leave`` when ``fail`` is None)."""

    def __new__(cls, original: Callable[..., Any], enter: Callable[..., Any], leave: Callable[[Any], Any],
                fail: Callable[[Any], Any] | None = None) -> Any: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any: ...

def detached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """See _bypass.c: ``fn(*args, **kwargs)`` as the bottom of the Python stack (CPython 3.11)."""
