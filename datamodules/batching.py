"""Batching that several modalities share: the ignore index of padded targets and our batch samplers.

``BucketBatchSampler`` groups sequences of similar length (speech utterances, POS sentences) so batches carry
little padding; ``ShardedBatchSampler`` lets multi-process training split the batches of such a sampler.
Both live here, once, so no modality imports another one's module for them.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterable, Iterator, Sequence

from torch.utils.data import BatchSampler, DistributedSampler, Sampler

IGNORE = -100  # target of padding and unlabelled positions (cross_entropy's default ignore_index)


# Lightning cannot see that the sampler below yields every index when predicting; it does.
warnings.filterwarnings("ignore", message=r".*custom batch sampler `BucketBatchSampler` for prediction")


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of sequences (sentences, utterances) of similar length (little padding).

    Training (``shuffle``): each epoch draws a random order, sorts pools of ``50 * batch_size`` sequences
    by length, cuts them into batches and shuffles the batches. Evaluation: sorted by length, in order.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.lengths, self.batch_size, self.shuffle, self.seed = list(lengths), batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.lengths)))
        if not self.shuffle:
            order.sort(key=lambda i: self.lengths[i])
            yield from (order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size))
            return
        rng = random.Random(self.seed * 100_003 + self.epoch)
        self.epoch += 1  # a new order next time even if nobody calls set_epoch
        rng.shuffle(order)
        pool = 50 * self.batch_size
        batches = []
        for p in range(0, len(order), pool):
            chunk = sorted(order[p:p + pool], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(batches)
        yield from batches


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
