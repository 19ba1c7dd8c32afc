"""Attention pooling: a learned query per head attends over a sequence and returns one vector.

For head h with learned query u_h: k_j = W^k a^j, v_j = W^v a^j (split into heads),
α_h(j) = softmax_j(u_h · k_{h,j} / √d) over the real positions j, c_h = Σ_j α_h(j) v_{h,j};
the heads are concatenated and mixed by W^o. It replaces mean pooling when only part of a
sequence carries the label (the spoken word inside silence, say).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .scores import masked_softmax


def masked_mean(x: Tensor, padding_mask: Tensor) -> Tensor:
    """(B, L, dim), (B, L) True = real -> (B, dim): the mean over real positions (0 for an all-padding row)."""
    weights = padding_mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class AttentionPooling(nn.Module):
    """(B, L, dim) with a padding mask (B, L), True = real -> (B, dim); an all-padding row gives W^o's bias."""

    def __init__(self, dim: int, num_heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if dim <= 0 or num_heads <= 0 or dim % num_heads:
            raise ValueError(f"AttentionPooling: dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.query = nn.Parameter(torch.empty(num_heads, self.head_dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None,
                return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Pooled (B, dim); with ``return_weights`` also the weights (B, heads, L)."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.size(-1) != self.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"AttentionPooling expects x of shape (batch, length, dim) with dim={self.dim}, "
                             f"got {shape}")
        batch, length, _ = x.shape
        if padding_mask is not None and (padding_mask.dtype != torch.bool or padding_mask.shape != (batch, length)):
            raise ValueError(f"AttentionPooling: padding_mask must be a bool tensor of shape ({batch}, {length}) "
                             f"(True = real), got {padding_mask.dtype} {tuple(padding_mask.shape)}")
        k, v = self.kv(x).view(batch, length, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        scores = torch.einsum("hd,bhld->bhl", self.query.to(k.dtype), k) / math.sqrt(self.head_dim)
        weights = masked_softmax(scores, None if padding_mask is None else padding_mask[:, None, :])
        pooled = torch.einsum("bhl,bhld->bhd", self.drop(weights), v).reshape(batch, self.dim)
        out = self.proj(pooled)
        return (out, weights) if return_weights else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.num_heads}"
