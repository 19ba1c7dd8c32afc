"""``AttnLabDataModule``: the DataLoader settings every datamodule shares.

The batch samplers the loaders wrap live in ``datamodules.batching`` (``ShardedBatchSampler`` is importable
from here too, as before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from .batching import ShardedBatchSampler

__all__ = ["AttnLabDataModule", "ShardedBatchSampler"]


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
