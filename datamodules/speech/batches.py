"""Speech batches: a dataset of normalised utterances (SpecAugment on training copies, shifted frame grids) and
``collate``, which pads to the longest utterance with a padding mask (labels ``IGNORE`` on padding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..batching import IGNORE
from .augment import SpecAugment


class FeatureDataset(Dataset):
    """Normalised utterances; SpecAugment (training) on a copy at every access. An item with ``shifted``
    (copies on moved frame grids, see ``SpeechDataModule``) gives one of its versions at random per access."""

    def __init__(self, items: list[dict[str, Any]], augment: SpecAugment | None = None, groups: int = 1) -> None:
        self.items, self.augment, self.groups = items, augment, groups

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Any]]:
        item = self.items[i]
        shifted = item.get("shifted")
        if shifted:
            k = int(torch.randint(len(shifted) + 1, ()))
            if k:
                item = {**item, **shifted[k - 1]}
        if self.augment is not None and self.augment.active:
            item = {**item, "features": self.augment(item["features"], self.groups)}
        return i, item

    @property
    def lengths(self) -> list[int]:
        return [item["features"].size(0) for item in self.items]


def collate(items: list[tuple[int, dict[str, Any]]]) -> dict[str, Tensor]:
    """Pad to the longest utterance: features (B, T, F), mask (B, T) True = real frame, labels (B, T) with
    ``IGNORE`` on padding (frame level) or (B,) (utterance level), index (B,)."""
    indices, utts = zip(*items, strict=True)
    lengths = torch.tensor([u["features"].size(0) for u in utts])
    batch, length, dim = len(utts), int(lengths.max()), utts[0]["features"].size(1)
    features = torch.zeros(batch, length, dim)
    for i, u in enumerate(utts):
        features[i, :u["features"].size(0)] = u["features"]
    out = {"features": features, "mask": torch.arange(length)[None, :] < lengths[:, None],
           "index": torch.tensor(indices)}
    if "frame_labels" in utts[0]:
        labels = torch.full((batch, length), IGNORE, dtype=torch.long)
        for i, u in enumerate(utts):
            labels[i, :u["frame_labels"].numel()] = u["frame_labels"]
        out["labels"] = labels
    else:
        out["labels"] = torch.tensor([u["label"] for u in utts], dtype=torch.long)
    return out
