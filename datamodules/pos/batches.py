"""POS batches: encoded sentences and ``collate``, which pads them with a padding mask (tags ``IGNORE`` on padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..batching import IGNORE
from .conllu import Sentence
from .vocab import SHAPES, PosVocab

# What the tagger reads of an encoded batch (besides ``mask``), in the order of its word features' arguments
# (``apps.pos_features.WordFeatures.forward``): its input, as export and explain pass it on.
WORD_INPUTS = ("words", "chars", "shapes", "suffixes", "stems")
PER_WORD = ("words", "suffixes", "stems", "shapes", "known", "tags", "aux_tags", "columns", "ufeats", "features")


def collate(items: list[tuple[int, dict[str, Tensor]]]) -> dict[str, Tensor]:
    """Pad a list of ``(index, encoded sentence)`` into a batch; ``mask`` is True on real words."""
    indices, sentences = zip(*items, strict=True)
    lengths = torch.tensor([len(s["words"]) for s in sentences])
    batch, length = len(sentences), int(lengths.max())
    width = max(s["chars"].size(1) for s in sentences)
    out = {
        "words": torch.zeros(batch, length, dtype=torch.long),
        "chars": torch.zeros(batch, length, width, dtype=torch.long),
        "suffixes": torch.zeros(batch, length, sentences[0]["suffixes"].size(1), dtype=torch.long),
        "stems": torch.zeros(batch, length, sentences[0]["stems"].size(1), dtype=torch.long),
        "shapes": torch.zeros(batch, length, len(SHAPES), dtype=torch.bool),
        "known": torch.zeros(batch, length, dtype=torch.bool),
        "tags": torch.full((batch, length), IGNORE, dtype=torch.long),
        "aux_tags": torch.full((batch, length), IGNORE, dtype=torch.long),
        "columns": torch.full((batch, length, sentences[0]["columns"].size(1)), IGNORE, dtype=torch.long),
        "ufeats": torch.full((batch, length), IGNORE, dtype=torch.long),
        "features": torch.full((batch, length, sentences[0]["features"].size(1)), IGNORE, dtype=torch.long),
    }
    for i, s in enumerate(sentences):
        n, c = len(s["words"]), s["chars"].size(1)
        for key in PER_WORD:
            out[key][i, :n] = s[key]
        out["chars"][i, :n, :c] = s["chars"]
    out["mask"] = torch.arange(length)[None, :] < lengths[:, None]
    out["index"] = torch.tensor(indices)
    return out


class EncodedSentences(Dataset):
    def __init__(self, sentences: Sequence[Sentence], vocab: PosVocab) -> None:
        aux = vocab.aux_tagset
        self.items = [vocab.encode(s.words, s.tags, s.column(aux) if aux else None,
                                   {name: s.values(name) for name in vocab.columns}) for s in sentences]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Tensor]]:
        return i, self.items[i]
