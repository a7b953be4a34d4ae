from typing import Callable

def install(on_term: Callable[[], bool], grace_s: float, /) -> bool:
    """See _sigterm.c: our SIGTERM handler, installed only over the default disposition."""

def take_over() -> None:
    """See _sigterm.c: on_term will end the process; SIGTERM is the default again."""

def uninstall() -> bool:
    """See _sigterm.c: the handler off; True when a SIGTERM had come."""
