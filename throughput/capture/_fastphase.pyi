from typing import Any, Callable

class Phase:
    """See _fastphase.c: RecordedPhase's __enter__/__exit__ in C."""

    _rec: Any
    _name: str
    _frames: list[Any]

    def __new__(cls, rec: Any, name: str, drain_at: int, misuse: Callable[[Any, list[Any]], BaseException]) -> Any: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...

def split_log(entries: list[tuple[Any, ...]], step_end: Any, /) -> tuple[tuple[str, ...], bytearray, list[Any], list[Any]] | None:
    """See recorder.split_log: the drain's columns of a log of uniform steps, in one C pass."""
