from typing import Any, Callable

class Mode:
    """See _fastphase.c: a recorder's two switches as C fields (both True at first)."""

    recording: bool
    direct: bool

class Phase:
    """See _fastphase.c: RecordedPhase's __enter__/__exit__ in C."""

    _rec: Any
    _name: str
    _frames: list[Any]

    def __new__(cls, rec: Any, name: str, drain_at: int, misuse: Callable[[Any, list[Any]], BaseException]) -> Any: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...

class Timed:
    """See _fastphase.c: Recorder.iterate_py without a generator frame."""

    def __new__(cls, rec: Any, iterable: Any, phase: str, note: Callable[[Any], Any], drain_at: int) -> Any: ...
    def __iter__(self) -> Any: ...
    def __next__(self) -> Any: ...

def split_log(entries: list[tuple[Any, ...]], step_end: Any, start: int, /) -> \
        tuple[tuple[str, ...], bytearray, list[Any], list[Any], int] | int:
    """See recorder.split_log: from start, a run of uniform steps as columns (one C pass), or where
    the entries to replay one by one end."""

OWN_CLOCK: bool
"""True where time.perf_counter is CLOCK_MONOTONIC: the phases read it themselves (``perf_counter``)."""

def perf_counter() -> float:
    """See _fastphase.c: the phases' own reading of time.perf_counter (RuntimeError where OWN_CLOCK is False)."""
