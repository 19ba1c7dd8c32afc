"""Long-Range-Arena-style classifier: tokens -> embedding + sinusoidal positions -> core.Encoder -> pool -> head.

Thin on purpose: every efficient-attention variant is a config line — ``pattern`` (Full, Truncated,
Strided, Longformer, BigBird, ...) or ``kernel`` (linear, performer, linformer) — and the rest of the model
stays the same, so a comparison measures the attention and nothing else. Batches are
``(tokens (B, L), padding_mask (B, L), labels (B,))`` with a CLS token at position 0 (ListOps, ByteText).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from core import BigBird, Encoder, Full, Global, Longformer, Pattern, Strided, masked_mean, sinusoidal_positions
from core.attention import Kernel

from .base import AttnLabModule, OptimConfig
from .sequence import SequenceLabelSteps

# patterns saved inside hyperparameters of Python-built models load under weights_only
torch.serialization.add_safe_globals([Strided, Global, Longformer, BigBird])


class LRAClassifier(SequenceLabelSteps, AttnLabModule):
    """Classify a sequence. ``pool``: "cls" (the encoder output at position 0) or "mean" (over real tokens).

    ``pattern``: which keys each token sees (softmax attention through ``core.attend``); ``kernel``: "softmax"
    or an O(L) approximation ("linear", "performer", "linformer"; pattern Full), with ``num_features``
    (Performer's random features, Linformer's projected length) and ``max_length`` (Linformer's E, F columns).
    """

    monitor = "val/acc"
    monitor_mode = "max"
    app_name = "lra"

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        pattern: Pattern = Full(),
        kernel: Kernel = "softmax",
        num_features: int = 64,
        max_length: int = 2048,
        redraw_interval: int = 0,
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
        self.pattern, self.pool = pattern, pool
        self.embed = nn.Embedding(vocab_size, dim)
        self.drop = nn.Dropout(dropout)
        self.encoder = Encoder(dim=dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout,
                               kernel=kernel, num_features=num_features, max_length=max_length,
                               redraw_interval=redraw_interval)
        self.head = nn.Linear(dim, num_classes)
        self.setup_metrics({"acc": MulticlassAccuracy(num_classes, average="micro")})

    def forward(self, tokens: Tensor, padding_mask: Tensor) -> Tensor:
        """(B, L) tokens, (B, L) mask -> (B, num_classes) logits."""
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
