"""What the Profiler keeps of a step: its loss (read without waiting for a device) and its counts."""

from __future__ import annotations

from typing import Any

from throughput.capture import batch as _batch
from throughput.capture.batch import BatchStats
from throughput.capture.recorder import StepMeta


def keep_loss(loss: Any) -> Any:
    """What to keep of a step's loss. A CPU tensor of one element is read now, as a float: ``.item()``
    on the host is a plain read, and keeping thousands of detached tensors alive measurably slows small
    steps (about 4% at 1.6 ms). Any other tensor is kept detached: a device tensor is read later without
    waiting for the GPU (``DeviceLosses``). Anything else is kept as given.

    Hot path (once a step, inside the training loop, where the CPU caches hold the model's tensors, not
    the interpreter's): a loss of exactly ``torch.Tensor`` costs two binding calls (``is_cpu``,
    ``item``); each costs microseconds there. Under a TorchDispatchMode of the script's, the mode does
    not see these reads (``batch.outside_dispatch_modes``)."""
    depth = _batch._dispatch_depth   # one C call a step; the Python check only until torch is bound
    if depth() if depth is not None else _batch.dispatch_modes_active():
        with _batch.outside_dispatch_modes():
            return _keep_loss(loss)
    return _keep_loss(loss)


def _keep_loss(loss: Any) -> Any:
    if type(loss) is (_batch._tensor_class or _batch.tensor_class()):
        readable = loss.is_cpu   # one element is checked by item() itself
    elif loss is None or not hasattr(loss, "detach"):
        return loss
    else:   # a tensor subclass or a tensor-like object
        readable = getattr(loss, "is_cpu", False) and loss.numel() == 1
    if not readable:
        return loss.detach()
    try:
        value = loss.item()   # raises for more than one element
    except RuntimeError:
        return loss.detach()
    if type(value) is float:
        return value
    try:   # an integer or boolean loss reads as a float; one with no float value (complex) is kept detached
        return float(value)
    except (TypeError, ValueError):
        return loss.detach()


def add_loss(total: Any, loss: Any) -> Any:
    """The step's loss so far plus one more micro-batch's: under gradient accumulation a step reports the
    sum of the losses passed to backward within it, the quantity whose gradient the optimizer step uses
    (the full-batch mean when the script divides each by the accumulation count). Floats add at once;
    device tensors add on the device (an asynchronous op, no sync)."""
    if loss is None:
        return total
    if total is None:
        return loss
    return total + loss


def to_float(value: Any) -> float | None:
    try:
        # Sync point for a device tensor (only without DeviceLosses, e.g. a multi-element loss): it waits.
        return float(value.item()) if hasattr(value, "item") else float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def sum_field(batches: list[BatchStats], name: str) -> int | None:
    """The sum of one field over the step's batches; None if any batch lacks it (or there are none)."""
    if len(batches) == 1:   # the usual step: one batch, no accumulation
        return getattr(batches[0], name)
    total = 0
    for b in batches:
        value = getattr(b, name)
        if value is None:
            return None
        total += value
    return total if batches else None


def step_meta(batches: list[BatchStats], samples: int | None, tokens: int | None, padding_tokens: int | None,
               micro_steps: int | None, grad_norm: float | None) -> StepMeta:
    """A step's counts: the ones given to ``step()``, else the sums over the batches it iterated."""
    return StepMeta(
        samples=samples if samples is not None else sum_field(batches, "samples"),
        tokens=tokens if tokens is not None else sum_field(batches, "tokens"),
        padding_tokens=padding_tokens if padding_tokens is not None else sum_field(batches, "padding_tokens"),
        micro_steps=micro_steps if micro_steps is not None else max(1, len(batches)),
        grad_norm=grad_norm,
    )


class DeviceLosses:
    """Reads device-tensor losses without a per-step wait: every ``batch`` losses are stacked and copied
    to the host with ``non_blocking=True`` behind a recorded CUDA event, and read once the event says
    the copy is done (a later drain). Memory holds at most a batch of tensors plus copies in flight."""

    def __init__(self, batch: int = 64) -> None:
        self._batch = batch
        self._waiting: list[tuple[int, Any]] = []
        self._in_flight: list[tuple[list[int], Any, Any]] = []   # (indices, host tensor, event)

    def accepts(self, loss: Any) -> bool:
        return getattr(loss, "is_cuda", False) and getattr(loss, "numel", lambda: 0)() == 1

    def submit(self, index: int, loss: Any) -> None:
        self._waiting.append((index, loss))
        if len(self._waiting) >= self._batch:
            self._launch()

    def _launch(self) -> None:
        import torch
        if not self._waiting:
            return
        indices = [i for i, _ in self._waiting]
        stacked = torch.stack([t.reshape(()).float() for _, t in self._waiting])
        host = stacked.to("cpu", non_blocking=True)   # queued behind the step's work: no wait here
        event = torch.cuda.Event()
        event.record()
        self._in_flight.append((indices, host, event))
        self._waiting = []

    def ready(self) -> list[tuple[int, float | None]]:
        out: list[tuple[int, float | None]] = []
        while self._in_flight and self._in_flight[0][2].query():
            indices, host, _ = self._in_flight.pop(0)
            out += list(zip(indices, (float(v) for v in host.tolist())))
        return out

    def finish(self) -> None:
        """Launch the last batch and wait for every copy (the end of the run: one sync)."""
        self._launch()
        for _, _, event in self._in_flight:
            # Sync point: the end of the run, after the recorder's own final synchronize.
            event.synchronize()


_COUNT_MAX = 2**63 - 1   # what a session file's readers take as a count (a signed 64-bit integer)


def checked_step_values(samples: Any, tokens: Any, padding_tokens: Any, micro_steps: Any,
                        grad_norm: Any) -> tuple[int | None, int | None, int | None, int | None, float | None]:
    """The values given to ``Profiler.step`` as Python numbers, checked where they are given (a value
    that cannot be written would otherwise surface only when the report is written, after the run).

    Counts (``samples``, ``tokens``, ``padding_tokens``, ``micro_steps``): a non-negative ``int`` (not a
    bool), a numpy integer, or a one-element integer tensor; ``micro_steps`` at least 1. ``grad_norm``: a
    real number, numpy number or one-element tensor (NaN and infinity are kept: a diverging run's
    norm). A tensor is read at once (``item()``, unseen by the script's dispatch modes): on a GPU that
    waits for the device, so pass numbers where the loop has them. Raises TypeError or ValueError that
    names the argument."""
    counts = tuple(_count(name, value, 1 if name == "micro_steps" else 0) for name, value in
                   (("samples", samples), ("tokens", tokens), ("padding_tokens", padding_tokens),
                    ("micro_steps", micro_steps)))
    return counts[0], counts[1], counts[2], counts[3], _norm(grad_norm)


def _number(name: str, value: Any) -> Any:
    """``value`` as a Python scalar: numpy scalars and one-element tensors read; others as given."""
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else getattr(value, "size", 1)
        if size != 1:
            raise ValueError(f"step({name}=...) takes one number, got a value of {size} elements")
        with _batch.outside_dispatch_modes():
            return value.item()
    return value


def _count(name: str, value: Any, least: int) -> int | None:
    if value is None:
        return None
    number = _number(name, value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"step({name}=...) takes a whole number, got {value!r}")
    if not least <= number <= _COUNT_MAX:
        raise ValueError(f"step({name}=...) must be {'at least 1' if least else 'non-negative'} "
                         f"and below 2**63, got {number}")
    return int(number)


def _norm(value: Any) -> float | None:
    if value is None:
        return None
    number = _number("grad_norm", value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(f"step(grad_norm=...) takes a real number, got {value!r}")
    return float(number)
