"""``AttnLabDataModule``: the DataLoader settings every datamodule shares.

The batch samplers the loaders wrap live in ``datamodules.batching`` (``ShardedBatchSampler`` is importable
from here too, as before).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from core.errors import ConfigError, require

from .batching import BucketBatchSampler, ShardedBatchSampler

__all__ = ["AttnLabDataModule", "BucketedSplits", "ShardedBatchSampler", "library_class"]

# ``--help`` text of the loader options every datamodule takes, written once: appended to each datamodule's
# "Args:" section (jsonargparse reads an option's description from there) unless it describes them itself.
LOADER_ARGS = {
    "batch_size": "items per batch (sentences, utterances, images, sequences)",
    "num_workers": "DataLoader worker processes (0: load in the main process)",
    "pin_memory": "pin batches in page-locked memory; null: pin when CUDA is available",
}


def with_loader_args(doc: str | None, params: list[str]) -> str | None:
    """``doc`` with a line for each loader option in ``params`` that its "Args:" section does not describe."""
    missing = [p for p in params if p in LOADER_ARGS and not re.search(rf"^\s+{p}\s*(\(.*\))?:", doc or "", re.M)]
    found = re.search(r"^([ \t]*)Args:\s*$", doc or "", re.M)
    if doc is None or not missing or not found:
        return doc
    lines = "\n".join(f"{found.group(1)}    {p}: {LOADER_ARGS[p]}" for p in missing)
    return f"{doc.rstrip()}\n{lines}\n{found.group(1)}"


class AttnLabDataModule(L.LightningDataModule):
    """Holds batch_size / num_workers / pin_memory; ``pin_memory=None`` means "pin when CUDA is available"."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each datamodule's "Args:" section gets the lines of the loader options it takes (``--help`` text)."""
        super().__init_subclass__(**kwargs)
        try:
            params = list(inspect.signature(cls.__init__).parameters)[1:]
        except (TypeError, ValueError):
            params = []
        cls.__doc__ = with_loader_args(cls.__doc__, params)

    def __init__(self, batch_size: int = 32, num_workers: int = 0, pin_memory: bool | None = None) -> None:
        super().__init__()
        # checked here, at config time, before any data is read (torch would say it after loading everything)
        require(isinstance(batch_size, int) and batch_size >= 1, "data.batch_size", batch_size, "an integer >= 1")
        require(isinstance(num_workers, int) and num_workers >= 0, "data.num_workers", num_workers,
                "an integer >= 0 (0 = load in the main process)")
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


class BucketedSplits(AttnLabDataModule):
    """A datamodule whose splits hold variable-length items (sentences, utterances), batched by length buckets
    (``datamodules.batching.BucketBatchSampler``: little padding, shuffled buckets in training).

    Subclasses provide ``dataset(split)``, ``item_lengths(dataset)``, ``collate`` and ``seed``."""

    collate: Callable[[list], Any]
    seed: int

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    def item_lengths(self, dataset: Dataset) -> list[int]:
        raise NotImplementedError

    def split_loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.dataset(split)
        sampler = BucketBatchSampler(self.item_lengths(data), self.batch_size, shuffle=shuffle, seed=self.seed)
        return self.loader(data, collate_fn=type(self).collate, batch_sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self.split_loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.split_loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.split_loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.split_loader("predict", shuffle=False)


def library_class(module: ModuleType, name: str, key: str = "data.dataset") -> type:
    """The class ``module.<name>`` (e.g. a ``torch_geometric.datasets`` or ``torchvision.datasets`` class named in a
    config); one ConfigError naming ``key`` and the closest names when there is none."""
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        close = difflib.get_close_matches(name, getattr(module, "__all__", dir(module)), n=5, cutoff=0.5)
        raise ConfigError(f"{key} = {name!r} is not a class of {module.__name__}"
                          + (f"; did you mean {', '.join(close)}?" if close else f"; see {module.__name__}"))
    return cls
