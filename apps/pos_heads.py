"""The tagger's heads for the other CoNLL-U columns (XPOS, FEATS) beside its main tag column.

One linear head per column on the shared encoder output, trained together (their cross-entropies added to the
main loss, weighted by ``columns_weight``). FEATS is one class per whole feature string, as UDPipe 1 predicts
it, rather than one head per feature (Stanza): a whole string is always a combination the treebank uses, and
the scorer counts a word right only when its whole (universal) string is; the price is that a string never seen
in training cannot be predicted (``docs/results/pos.md`` gives that share per treebank).

Accuracy of FEATS is counted as the official CoNLL 2018 scorer counts UFeats: on the universal features only
(``datamodules.pos.universal_feats``), so ``test/ufeats_acc`` equals its UFeats on the written file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.batching import IGNORE
from datamodules.pos import PosVocab

METRIC_NAMES = {"upos": "upos_acc", "xpos": "xpos_acc", "feats": "ufeats_acc"}


def best_real_ids(logits: Tensor) -> Tensor:
    """The most likely real value per word: ids 0 and 1 (``<pad>``, ``<unk>``) are never written."""
    return logits.detach().clone().index_fill_(-1, torch.tensor([0, 1], device=logits.device),
                                               float("-inf")).argmax(-1)


class ColumnHeads(nn.Module):
    """``Linear(dim, values)`` per predicted column of ``vocab.columns`` (in its order)."""

    def __init__(self, vocab: PosVocab, dim: int) -> None:
        super().__init__()
        self.names = list(vocab.columns)
        self.heads = nn.ModuleDict({name: nn.Linear(dim, len(v)) for name, v in vocab.columns.items()})
        self.register_buffer("ufeats_map", vocab.ufeats_map() if "feats" in vocab.columns else torch.empty(0),
                             persistent=False)

    def logits(self, hidden: Tensor) -> dict[str, Tensor]:
        return {name: self.heads[name](hidden) for name in self.names}

    def loss(self, logits: dict[str, Tensor], batch: dict[str, Tensor], smoothing: float) -> Tensor:
        """The sum of the columns' cross-entropies over the words that have a value (``IGNORE`` elsewhere)."""
        total = logits[self.names[0]].new_zeros(())
        for k, name in enumerate(self.names):
            target = batch["columns"][..., k]
            if bool((target != IGNORE).any()):
                total = total + F.cross_entropy(logits[name].flatten(0, 1), target.flatten(), ignore_index=IGNORE,
                                                label_smoothing=smoothing)
        return total

    def correct(self, logits: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
        """Per column metric name: (words right, words counted); FEATS counted on universal features."""
        out = {}
        for k, name in enumerate(self.names):
            preds = logits[name].argmax(-1)
            target = batch["columns"][..., k]
            if name == "feats":
                preds, target = self.ufeats_map[preds], batch["ufeats"]
            counted = (target != IGNORE) & batch["mask"]
            out[METRIC_NAMES[name]] = ((preds == target) & counted).sum(), counted.sum()
        return out

    def best_values(self, logits: dict[str, Tensor]) -> dict[str, Tensor]:
        """(B, L) the best real value id per word of every column (never <pad>/<unk>)."""
        return {name: best_real_ids(logits[name]) for name in self.names}
