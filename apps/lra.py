"""Long-Range-Arena-style classifier: tokens -> embedding + sinusoidal positions -> core.Encoder -> pool -> head.

Thin on purpose: every efficient-attention variant is a config line — ``pattern`` (Full, Truncated,
Strided, Longformer, BigBird, ...) or ``encoder.kernel`` (linear, performer, linformer) — and the rest of the model
stays the same, so a comparison measures the attention and nothing else. Batches are
``(tokens (B, L), padding_mask (B, L), labels (B,))`` with a CLS token at position 0 (ListOps, ByteText).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from core import (
    BigBird,
    Encoder,
    EncoderConfig,
    Full,
    Global,
    KernelConfig,
    Longformer,
    Pattern,
    Strided,
    masked_mean,
    sinusoidal_positions,
)
from core.errors import check_token_ids

from .base import AttnLabModule, OptimConfig
from .export import ExportSpec
from .sequence import SequenceLabelSteps, token_export

# patterns saved inside hyperparameters of Python-built models load under weights_only
torch.serialization.add_safe_globals([Strided, Global, Longformer, BigBird])

# LRAClassifier's default encoder (Linformer's E, F sized for 2048 tokens)
LRA_ENCODER = EncoderConfig(dim=64, depth=2, num_heads=4, mlp_ratio=2.0, dropout=0.1,
                            kernel=KernelConfig(max_length=2048))


class LRAClassifier(SequenceLabelSteps, AttnLabModule):
    """Classify a sequence. ``pool``: "cls" (the encoder output at position 0) or "mean" (over real tokens).

    ``encoder``: the ``core.EncoderConfig``. ``pattern``: which keys each token sees (softmax attention through
    ``core.attend``); ``encoder.kernel``: ``{kind: softmax}`` or an O(L) approximation (kind "linear",
    "performer", "linformer"; pattern Full), with ``num_features`` (Performer's random features, Linformer's
    projected length) and ``max_length`` (Linformer's E, F columns; 2048 here), see ``core.KernelConfig``.

    Args:
        vocab_size: number of token ids
        num_classes: number of sequence labels
        encoder: the encoder (core.EncoderConfig, with kernel: softmax|linear|performer|linformer)
        pattern: which keys each token sees (Full, Truncated, Strided, Longformer, BigBird, ...)
        pool: cls (the output at position 0) or mean (over the real tokens)
    """

    monitor = "val/acc"
    monitor_mode = "max"
    app_name = "lra"

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        encoder: EncoderConfig = LRA_ENCODER,
        pattern: Pattern = Full(),
        pool: Literal["cls", "mean"] = "mean",
        init_from: str | None = None,
        freeze: str | list[str] | None = None,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
        optim: OptimConfig | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(optim=optim, compile=compile, init_from=init_from, freeze=freeze,
                         head_lr_scale=head_lr_scale, backbone_lr_scale=backbone_lr_scale)
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        self.save_hyperparameters()
        self.pattern, self.pool, self.encoder_config = pattern, pool, encoder
        self.embed = nn.Embedding(vocab_size, encoder.dim)
        self.drop = nn.Dropout(encoder.dropout)
        self.encoder = Encoder(encoder)
        self.head = nn.Linear(encoder.dim, num_classes)
        self.setup_metrics({"acc": MulticlassAccuracy(num_classes, average="micro")})

    def forward(self, tokens: Tensor, padding_mask: Tensor) -> Tensor:
        """(B, L) tokens, (B, L) mask -> (B, num_classes) logits."""
        check_token_ids(tokens, self.embed.num_embeddings, "model.vocab_size")
        x = self.embed(tokens)
        x = x + sinusoidal_positions(tokens.size(1), x.size(-1), device=x.device).to(x.dtype)
        x = self.encoder(self.drop(x), pattern=self.pattern, padding_mask=padding_mask)
        if self.pool == "cls":
            pooled = x[:, 0]
        else:
            pooled = masked_mean(x, padding_mask)
        return self.head(pooled)

    def predict_step(self, batch, batch_idx: int) -> Tensor:
        return self(batch[0], batch[1]).argmax(-1)

    def export_example(self, batch: int = 2, length: int = 12) -> ExportSpec:
        return token_export(self, self.embed.num_embeddings, batch, length, backend="dense")
