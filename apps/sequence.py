"""Sequence classification: tokens -> embeddings (+ positions) -> core.Encoder -> masked mean -> linear head.

The demo app: small enough to train on a laptop CPU, and every knob of the core (score, position,
pattern) is a config line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim
from torchmetrics.classification import MulticlassAccuracy

from core import Encoder, EncoderConfig, Full, LearnedPositions, Pattern, masked_mean, sinusoidal_positions
from core.errors import check_token_ids

from .base import AttnLabModule, OptimConfig
from .export import ExportSpec
from .plotting import first_batch_with_length
from .sequence_figures import draw_sequence

SEQUENCE_ENCODER = EncoderConfig(dim=64, depth=2, num_heads=4, dropout=0.1)  # SequenceClassifier's default


# batch and length vary in an exported sequence classifier
SEQUENCE_DIMS = {"tokens": {0: Dim.DYNAMIC, 1: Dim.DYNAMIC}, "padding_mask": {0: Dim.DYNAMIC, 1: Dim.DYNAMIC}}


def token_export(module: nn.Module, vocab_size: int, batch: int, length: int,
                 backend: str | None = None) -> ExportSpec:
    """``module(tokens, padding_mask)`` traced on random tokens, the last item half padding (so the export sees a
    mask that matters); batch and length are dynamic."""
    generator = torch.Generator().manual_seed(batch * 1009 + length)
    tokens = torch.randint(0, vocab_size, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[-1, max(1, length // 2):] = False
    notes = {"inputs": "tokens (B, L) int64 ids < vocab_size; padding_mask (B, L) bool, True = real token",
             "outputs": "logits (B, num_classes)", "vocab_size": vocab_size}
    return ExportSpec(module, (tokens, mask), SEQUENCE_DIMS, notes, backend)


class SequenceLabelSteps:
    """``shared_step`` of an ``AttnLabModule`` whose batches are ``(tokens, padding_mask, labels)`` with one
    label per sequence: cross-entropy on ``self(tokens, padding_mask)`` and the module's metrics."""

    def predict_items(self, items: list[list[int]]) -> list[int]:
        """Token-id lists (padded here) -> the predicted class id of each."""
        length = max(len(t) for t in items)
        tokens = torch.zeros(len(items), length, dtype=torch.long, device=self.device)
        mask = torch.zeros(len(items), length, dtype=torch.bool, device=self.device)
        for i, t in enumerate(items):
            tokens[i, :len(t)] = torch.as_tensor(t, dtype=torch.long)
            mask[i, :len(t)] = True
        return self(tokens, mask).argmax(-1).tolist()

    def shared_step(self, batch: tuple[Tensor, Tensor, Tensor], stage: str) -> Tensor:
        tokens, padding_mask, labels = batch
        logits = self(tokens, padding_mask)
        loss = F.cross_entropy(logits, labels)
        self.log_step(stage, loss, logits.argmax(-1), labels, batch_size=labels.size(0))
        return loss


class SequenceClassifier(SequenceLabelSteps, AttnLabModule):
    """Classify a whole padded sequence. Batches are ``(tokens (B, L), padding_mask (B, L), labels (B,))``.

    ``encoder``: the ``core.EncoderConfig`` (``model.encoder: {dim, depth, num_heads, score, position, ...}``).
    ``position``: "sinusoidal" / "learned" are added to the embeddings here; positions inside attention are
    ``encoder.position`` ("rotary" / "relative"); both "none" leave the model order-blind.
    ``pattern``: which keys each token attends to, e.g. ``core.Truncated(left=2, right=2)``.
    ``init_from`` / ``freeze`` / ``head_lr_scale`` / ``backbone_lr_scale``: fine-tuning, see ``AttnLabModule``.

    Args:
        vocab_size: number of token ids
        num_classes: number of sequence labels
        encoder: the encoder (core.EncoderConfig: dim, depth, num_heads, score, position, ...)
        position: sinusoidal|learned added to the embeddings, or none (positions only from encoder.position)
        max_positions: length of the learned position table
        pattern: which keys each token attends to, e.g. core.Truncated(left=2, right=2)
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        encoder: EncoderConfig = SEQUENCE_ENCODER,
        position: Literal["sinusoidal", "learned", "none"] = "sinusoidal",
        max_positions: int = 512,
        pattern: Pattern = Full(),
        init_from: str | None = None,
        freeze: str | list[str] | None = None,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
        optim: OptimConfig | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(optim=optim, compile=compile, init_from=init_from, freeze=freeze,
                         head_lr_scale=head_lr_scale, backbone_lr_scale=backbone_lr_scale)
        self.save_hyperparameters()
        if position not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"model.position must be sinusoidal, learned or none, got {position!r} (positions "
                             "inside attention: model.encoder.position rotary|relative)")
        self.position, self.pattern, self.encoder_config = position, pattern, encoder
        dim = encoder.dim
        self.embed = nn.Embedding(vocab_size, dim)
        self.learned_positions = LearnedPositions(max_positions, dim) if position == "learned" else None
        self.drop = nn.Dropout(encoder.dropout)
        self.encoder = Encoder(encoder)
        self.head = nn.Linear(dim, num_classes)
        self.setup_metrics({"acc": MulticlassAccuracy(num_classes)})

    def forward(self, tokens: Tensor, padding_mask: Tensor) -> Tensor:
        """(B, L) tokens, (B, L) mask -> (B, num_classes) logits."""
        x = self.encode(tokens, padding_mask)
        return self.head(masked_mean(x, padding_mask))

    def encode(self, tokens: Tensor, padding_mask: Tensor,
               return_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """(B, L) tokens -> (B, L, dim) encoder outputs (and every layer's (B, heads, L, L) attention weights)."""
        length = tokens.size(1)
        check_token_ids(tokens, self.embed.num_embeddings, "model.vocab_size")
        x = self.embed(tokens)
        if self.position == "sinusoidal":
            x = x + sinusoidal_positions(length, x.size(-1), device=x.device).to(x.dtype)
        elif self.learned_positions is not None:
            x = x + self.learned_positions(length)
        return self.encoder(self.drop(x), pattern=self.pattern, padding_mask=padding_mask,
                            return_weights=return_weights)

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        tokens, padding_mask = batch[0], batch[1]
        return self(tokens, padding_mask).argmax(-1)

    def export_example(self, batch: int = 2, length: int = 12) -> ExportSpec:
        return token_export(self, self.embed.num_embeddings, batch, length)

    def explain_batch(self, loader: Any) -> Any:
        return first_batch_with_length(loader)

    def explain_figures(self, batch: Any, out: Path, example: int) -> list[Path]:
        return draw_sequence(self, self.datamodule(), batch, out, example)

