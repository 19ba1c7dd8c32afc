"""Padded token sequences with one label each: the dataset, collate and loaders the sequence tasks share.

The demo's ``SyntheticSequences`` and LRA's ``ListOps`` / ``ByteText`` all fill ``self.datasets`` with
``SequenceDataset``s and batch them as ``(tokens, padding_mask, label)``; that lives here once.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .base import AttnLabDataModule

# tokens (B, L) long, padding_mask (B, L) bool (True = real token), labels (B,) long
Batch = tuple[Tensor, Tensor, Tensor]


class SequenceDataset(Dataset):
    def __init__(self, sequences: list[Tensor], labels: Tensor) -> None:
        self.sequences, self.labels = sequences, labels

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.sequences[i], self.labels[i]


def pad_collate(items: list[tuple[Tensor, Tensor]], pad_id: int = 0) -> Batch:
    """Pad to the longest sequence in the batch; the mask says which positions are real."""
    seqs, labels = zip(*items, strict=True)
    lengths = torch.tensor([len(s) for s in seqs])
    tokens = torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True, padding_value=pad_id)
    mask = torch.arange(tokens.size(1))[None, :] < lengths[:, None]
    return tokens, mask, torch.stack(labels)


class PaddedSequenceSplits(AttnLabDataModule):
    """Base of the datamodules whose ``setup`` fills ``self.datasets`` with train/val/test ``SequenceDataset``s:
    padded ``(tokens, padding_mask, label)`` batches for each split (predict runs on test)."""

    datasets: dict[str, SequenceDataset]

    def train_dataloader(self):
        return self.loader(self.datasets["train"], shuffle=True, collate_fn=pad_collate)

    def val_dataloader(self):
        return self.loader(self.datasets["val"], collate_fn=pad_collate)

    def test_dataloader(self):
        return self.loader(self.datasets["test"], collate_fn=pad_collate)

    def predict_dataloader(self):
        return self.loader(self.datasets["test"], collate_fn=pad_collate)
