"""``AttnLabDataModule``: the DataLoader settings every datamodule shares."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler, SequentialSampler


class AttnLabDataModule(L.LightningDataModule):
    """Holds batch_size / num_workers / pin_memory; ``pin_memory=None`` means "pin when CUDA is available"."""

    def __init__(self, batch_size: int = 32, num_workers: int = 0, pin_memory: bool | None = None) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory

    def loader(self, dataset: Dataset, shuffle: bool = False, collate_fn: Callable[[list], Any] | None = None,
               batch_size: int | None = None, **kwargs: Any) -> DataLoader:
        """A DataLoader with the shared settings; a ``batch_sampler`` keyword replaces batch_size/shuffle (and is
        wrapped in a ``ShardedBatchSampler`` so multi-process training splits its batches between processes)."""
        if "batch_sampler" not in kwargs:
            kwargs.update(batch_size=batch_size or self.batch_size, shuffle=shuffle)
        elif not isinstance(kwargs["batch_sampler"], ShardedBatchSampler):
            kwargs["batch_sampler"] = ShardedBatchSampler(SequentialSampler(dataset), batches=kwargs["batch_sampler"])
        return DataLoader(
            dataset,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_fn,
            **kwargs,
        )


class ShardedBatchSampler(BatchSampler):
    """A batch sampler of our own (length buckets) that multi-process training can split: process r of w takes
    batches r, r + w, r + 2w, ... of the same epoch order (every process draws it with the same seed), the last
    ones repeated so every process gets as many batches (DistributedSampler does the same with samples).

    Lightning hands a ``DistributedSampler`` to the ``sampler`` argument of BatchSampler subclasses when it runs
    with several processes; only its rank and world size are used here, the batches come from ``batches``.
    With one process (any other ``sampler``) it yields ``batches`` unchanged.
    """

    def __init__(self, sampler: Sampler | Iterable, batch_size: int = 1, drop_last: bool = False,
                 batches: Iterable[list[int]] | None = None) -> None:
        super().__init__(sampler, batch_size=max(1, int(getattr(batches, "batch_size", batch_size))),
                         drop_last=drop_last)
        if batches is None:
            raise ValueError("ShardedBatchSampler needs batches= (the batch sampler to split)")
        self.batches = batches
        distributed = isinstance(sampler, DistributedSampler)
        self.rank = sampler.rank if distributed else 0
        self.world = sampler.num_replicas if distributed else 1

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.world)

    def __iter__(self) -> Iterator[list[int]]:
        if self.world == 1:
            yield from self.batches
            return
        batches = list(self.batches)
        if not batches:
            return
        padded = batches + batches[: len(self) * self.world - len(batches)]
        yield from padded[self.rank::self.world]
