"""Synthetic sequence tasks generated offline: a smoke test for the whole stack, no downloads.

"majority": a sequence of random tokens; the label is the token among ids ``0 .. num_classes-1``
that occurs most often (ids >= num_classes are distractors). Generation makes the winner strict,
so every example has exactly one right answer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .sequences import PaddedSequenceSplits, SequenceDataset


def make_majority(
    n: int, *, vocab_size: int, num_classes: int, min_len: int, max_len: int, seed: int
) -> tuple[list[Tensor], Tensor]:
    """``n`` sequences and their labels; sampling the label first keeps classes balanced."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(num_classes, (n,), generator=g)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    sequences = []
    for y, length in zip(labels.tolist(), lengths.tolist(), strict=True):
        tokens = torch.randint(vocab_size, (length,), generator=g)
        while True:  # overwrite random non-label positions with the label until it strictly leads
            counts = torch.bincount(tokens, minlength=vocab_size)[:num_classes]
            if counts[y] > torch.cat([counts[:y], counts[y + 1:]]).max():
                break
            others = (tokens != y).nonzero().squeeze(1)
            tokens[others[torch.randint(len(others), (1,), generator=g)]] = y
        sequences.append(tokens)
    return sequences, labels



class SyntheticSequences(PaddedSequenceSplits):
    """Batches of ``(tokens, padding_mask, label)`` for the "majority" task, fixed by ``seed``.

    Args:
        vocab_size: token ids 0 .. vocab_size-1 (ids >= num_classes are distractors)
        num_classes: label tokens 0 .. num_classes-1; the label is the one that occurs most often
        min_len: shortest sequence (tokens)
        max_len: longest sequence (tokens)
        num_train: generated training sequences
        num_val: generated validation sequences
        num_test: generated test sequences
        seed: seed of the generated splits (train seed, val seed + 1, test seed + 2)
    """

    def __init__(
        self,
        vocab_size: int = 16,
        num_classes: int = 4,
        min_len: int = 8,
        max_len: int = 32,
        num_train: int = 4000,
        num_val: int = 500,
        num_test: int = 1000,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if not 2 <= num_classes <= vocab_size:
            raise ValueError(f"need 2 <= num_classes <= vocab_size, got num_classes={num_classes}, "
                             f"vocab_size={vocab_size}")
        if not 1 <= min_len <= max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
        self.save_hyperparameters()
        self.datasets: dict[str, SequenceDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        sizes = {"train": h.num_train, "val": h.num_val, "test": h.num_test}
        for offset, (split, n) in enumerate(sizes.items()):
            if split not in self.datasets:
                seqs, labels = make_majority(n, vocab_size=h.vocab_size, num_classes=h.num_classes,
                                             min_len=h.min_len, max_len=h.max_len, seed=h.seed + offset)
                self.datasets[split] = SequenceDataset(seqs, labels)
