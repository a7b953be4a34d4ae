"""Data order that can be resumed exactly: the position is (epoch, micro-batches consumed in it).

Map-style datasets get ``EpochBatchSampler``: the epoch's order is a permutation drawn from a private
generator seeded by (seed, epoch), sharded across ranks, cut into micro-batches, and started at any
micro-batch index. The DataLoader gets its own seeded generator too, so creating an iterator never
draws from the global torch RNG (which would make a resumed run's dropout differ).
Iterable datasets resume by skipping the micro-batches already consumed (correct when the stream is
deterministic, at the cost of reading them again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from throughput.loop.config import ConfigError


@dataclass(frozen=True, slots=True)
class DataPosition:
    """Where the next micro-batch comes from: ``epoch`` and micro-batches consumed within it."""

    epoch: int = 0
    index: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}


class EpochBatchSampler(Sampler[list[int]]):
    """Micro-batches of indices for one epoch, from ``start`` (drop_last: partial batches are dropped).
    ``epoch`` and ``start`` may be moved between iterations (``BatchStream`` does, to keep one DataLoader
    and its persistent workers across epochs: batches of indices are made here, in the main process)."""

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int, start: int, shuffle: bool,
                 rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.start, self.shuffle, self.rank, self.world_size = start, shuffle, rank, world_size

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        usable = (self.n // self.world_size) * self.world_size  # every rank gets the same count
        return order[:usable][self.rank::self.world_size]

    def __len__(self) -> int:
        return len(self.indices()) // self.batch_size - self.start

    def __iter__(self) -> Iterator[list[int]]:
        order = self.indices()
        for b in range(self.start, len(order) // self.batch_size):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]


class BatchStream:
    """Endless micro-batches across epochs; ``position`` is updated as each one is handed out."""

    def __init__(self, dataset: Any, *, batch_size: int, seed: int, shuffle: bool, num_workers: int,
                 pin_memory: bool, collate_fn: Callable[[list[Any]], Any] | None, position: DataPosition,
                 rank: int = 0, world_size: int = 1, persistent_workers: bool = False,
                 prefetch_factor: int = 2) -> None:
        self.dataset, self.batch_size, self.seed, self.shuffle = dataset, batch_size, seed, shuffle
        self.num_workers, self.pin_memory, self.collate_fn = num_workers, pin_memory, collate_fn
        self.rank, self.world_size = rank, world_size
        # Loader-worker options mean nothing without workers (DataLoader refuses them then).
        self.persistent = persistent_workers and num_workers > 0
        self.prefetch_factor = prefetch_factor if num_workers > 0 else None
        self._loader: Any = None         # kept across epochs when workers persist (map-style only)
        self.position = position
        self.iterable = isinstance(dataset, IterableDataset)
        if not self.iterable and self.batches_per_epoch() < 1:
            raise ConfigError(f"the training set has {len(dataset)} samples, fewer than one micro-batch of "
                             f"{batch_size} per rank ({world_size} rank(s)): lower micro_batch_size")
        self._it: Iterator[Any] | None = None

    def batches_per_epoch(self) -> int:
        return (len(self.dataset) // self.world_size) // self.batch_size if not self.iterable else 0

    def next(self) -> Any:
        """The next micro-batch (starting a new epoch when one runs out)."""
        for _ in range(2):
            if self._it is None:
                self._it = self._open(self.position)
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                self.position = DataPosition(self.position.epoch + 1, 0)
                continue
            self.position = DataPosition(self.position.epoch, self.position.index + 1)
            return batch
        raise ConfigError("the training set yielded no batch in a whole epoch: is it empty, or smaller than "
                          "micro_batch_size?")

    def close(self) -> None:
        self._it = None  # drops the iterator, which shuts its worker processes down
        self._loader = None

    def _open(self, pos: DataPosition) -> Iterator[Any]:
        common: dict[str, Any] = dict(num_workers=self.num_workers, pin_memory=self.pin_memory,
                                      collate_fn=self.collate_fn, prefetch_factor=self.prefetch_factor,
                                      generator=torch.Generator().manual_seed(self.seed + pos.epoch),
                                      persistent_workers=False)
        if self.iterable:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(pos.epoch)
            it = iter(DataLoader(self.dataset, batch_size=self.batch_size, drop_last=True, **common))
            for _ in range(pos.index):  # deterministic stream: re-read what was consumed
                next(it)
            return it
        if self._loader is not None:   # persistent workers: the same loader, its sampler moved on
            self._loader.batch_sampler.epoch, self._loader.batch_sampler.start = pos.epoch, pos.index
            return iter(self._loader)
        sampler = EpochBatchSampler(len(self.dataset), self.batch_size, seed=self.seed, epoch=pos.epoch,
                                    start=pos.index, shuffle=self.shuffle, rank=self.rank,
                                    world_size=self.world_size)
        loader = DataLoader(self.dataset, batch_sampler=sampler, **dict(common, persistent_workers=self.persistent))
        if self.persistent:
            self._loader = loader
        return iter(loader)


def count_loss_tokens(batch: Any, counter: Callable[[Any], int] | None) -> int | None:
    """Loss-bearing tokens of a batch: the recipe's ``count_tokens``, else ``labels != -100`` (packed
    rows from throughput.packing use -100 at sequence boundaries and padding), else None (unknown)."""
    if counter is not None:
        return int(counter(batch))
    labels = batch.get("labels") if isinstance(batch, dict) else getattr(batch, "labels", None)
    if isinstance(labels, torch.Tensor):
        # Sync point on CUDA only if labels were already moved there; batches are counted on the host.
        return int((labels != -100).sum().item())
    return None
