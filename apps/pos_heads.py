"""The tagger's heads for the other CoNLL-U columns (XPOS, FEATS) beside its main tag column.

One linear head per column on the shared encoder output, trained together (their cross-entropies added to the
main loss, weighted by ``columns_weight``). FEATS is predicted one of two ways (``feats``):

- ``whole``: one class per whole feature string, as UDPipe 1 predicts it. A whole string is always a
  combination the treebank uses; the price is that a string never seen in training cannot be predicted
  (``docs/results/pos.md`` gives that share per treebank).
- ``factored``: one classifier per feature (its values or ``_``, absent), as Stanza does, the predicted string
  joined from the features that are present. It can write combinations training never showed, and every
  feature learns from every word that has it, which is what agglutinative languages (Turkish: one suffix per
  feature, many combinations) need; the price is that an inconsistent combination can be written.

Accuracy of FEATS is counted as the official CoNLL 2018 scorer counts UFeats: on the universal features only
(``datamodules.pos.universal_feats``), so ``test/ufeats_acc`` equals its UFeats on the written file.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batching import IGNORE
from datamodules.pos import ABSENT, PosVocab, join_feats

METRIC_NAMES = {"upos": "upos_acc", "xpos": "xpos_acc", "feats": "ufeats_acc"}
FeatsHead = Literal["whole", "factored"]


def best_real_ids(logits: Tensor) -> Tensor:
    """The most likely real value per word: ids 0 and 1 (``<pad>``, ``<unk>``) are never written."""
    return logits.detach().clone().index_fill_(-1, torch.tensor([0, 1], device=logits.device),
                                               float("-inf")).argmax(-1)


class ColumnHeads(nn.Module):
    """``Linear(dim, values)`` per predicted column of ``vocab.columns`` (in its order); with ``feats:
    factored`` the FEATS head has the values of every feature of ``vocab.features`` side by side."""

    def __init__(self, vocab: PosVocab, dim: int, feats: FeatsHead = "whole") -> None:
        super().__init__()
        if feats not in ("whole", "factored"):
            raise ValueError(f"model.feats_head must be 'whole' or 'factored', got {feats!r}")
        self.names = list(vocab.columns)
        self.factored = feats == "factored" and "feats" in vocab.columns
        self.vocab = vocab
        sizes = {name: len(v) for name, v in vocab.columns.items()}
        if self.factored:
            self.feature_sizes = [len(v) for v in vocab.features.values()]
            sizes["feats"] = sum(self.feature_sizes)
            self.register_buffer("universal", vocab.universal_feature_mask(), persistent=False)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, n) for name, n in sizes.items()})
        self.register_buffer("ufeats_map", vocab.ufeats_map() if "feats" in vocab.columns else torch.empty(0),
                             persistent=False)

    def logits(self, hidden: Tensor) -> dict[str, Tensor]:
        return {name: self.heads[name](hidden) for name in self.names}

    def feature_logits(self, logits: Tensor) -> tuple[Tensor, ...]:
        """(B, L, values) per feature of ``vocab.features`` from the factored FEATS head's output."""
        return logits.split(self.feature_sizes, dim=-1)

    def loss(self, logits: dict[str, Tensor], batch: dict[str, Tensor], smoothing: float) -> Tensor:
        """The sum of the columns' cross-entropies over the words that have a value (``IGNORE`` elsewhere);
        factored FEATS adds one cross-entropy per feature."""
        total = logits[self.names[0]].new_zeros(())
        pairs = []
        for k, name in enumerate(self.names):
            if name == "feats" and self.factored:
                pairs += [(part, batch["features"][..., f]) for f, part in enumerate(self.feature_logits(logits[name]))]
            else:
                pairs.append((logits[name], batch["columns"][..., k]))
        for scores, target in pairs:
            if bool((target != IGNORE).any()):
                total = total + F.cross_entropy(scores.flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                                                label_smoothing=smoothing)
        return total

    def best_features(self, logits: Tensor) -> Tensor:
        """(B, L, features) the best real value id of every feature (``ABSENT`` is a real value)."""
        return torch.stack([best_real_ids(part) for part in self.feature_logits(logits)], dim=-1)

    def correct(self, logits: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
        """Per column metric name: (words right, words counted); FEATS counted on universal features, on the
        values ``best_values`` writes."""
        out = {}
        for k, name in enumerate(self.names):
            if name == "feats" and self.factored:
                gold = batch["features"]
                right = ((self.best_features(logits[name]) == gold) | ~self.universal).all(-1)
                counted = (batch["ufeats"] != IGNORE) & batch["mask"]
                out[METRIC_NAMES[name]] = (right & counted).sum(), counted.sum()
                continue
            preds = best_real_ids(logits[name])  # as written by best_values
            target = batch["columns"][..., k]
            if name == "feats":
                preds, target = self.ufeats_map[preds], batch["ufeats"]
            counted = (target != IGNORE) & batch["mask"]
            out[METRIC_NAMES[name]] = ((preds == target) & counted).sum(), counted.sum()
        return out

    def best_values(self, logits: dict[str, Tensor], lengths: list[int]) -> dict[str, list[list[str]]]:
        """Per column, per sentence (``lengths`` words each), the value written for every word (never
        <pad>/<unk>; factored FEATS joined from the features that are not ``_``)."""
        out = {}
        for name in self.names:
            if name == "feats" and self.factored:
                ids = self.best_features(logits[name]).tolist()
                features = list(self.vocab.features.items())
                out[name] = [[join_feats({f: v.itos[i] for (f, v), i in zip(features, word, strict=True)
                                          if v.itos[i] != ABSENT}) for word in row[:n]]
                             for row, n in zip(ids, lengths, strict=True)]
            else:
                itos = self.vocab.columns[name].itos
                ids = best_real_ids(logits[name]).tolist()
                out[name] = [[itos[i] for i in row[:n]] for row, n in zip(ids, lengths, strict=True)]
        return out
