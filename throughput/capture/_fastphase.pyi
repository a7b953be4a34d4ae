from typing import Any, Callable

class Phase:
    """See _fastphase.c: RecordedPhase's __enter__/__exit__ in C."""

    _rec: Any
    _name: str
    _frames: list[Any]

    def __new__(cls, rec: Any, name: str, drain_at: int, misuse: Callable[[Any, list[Any]], BaseException]) -> Any: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...
