"""Linformer (Wang et al. 2020): keys and values projected along the sequence to k rows, then softmax.

    out = softmax(q (E K)ᵀ / √d) (F V),   E, F: learned (k × L) matrices

The attention matrix is L × k instead of L × L, so time and memory are O(L·k). E and F are parameters of
size (k, max_length), shared by the heads; a sequence of length L < max_length uses their first L
columns, and padded keys/values are zeroed before the projection, so padding does not change the result
of the real positions. Not causal: every projected row mixes the whole sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LinformerAttention(nn.Module):
    """Low-rank attention on (B, H, L, d) q, k, v with learned projections E, F of shape (k, max_length)."""

    def __init__(self, max_length: int, k: int = 64) -> None:
        super().__init__()
        if max_length < 1 or k < 1:
            raise ValueError(f"LinformerAttention needs max_length >= 1 and k >= 1, got {max_length}, {k}")
        self.max_length, self.k = max_length, k
        self.E = nn.Parameter(torch.randn(k, max_length) / math.sqrt(k))
        self.F = nn.Parameter(torch.randn(k, max_length) / math.sqrt(k))

    def project(self, k: Tensor, v: Tensor, padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(E K, F V): (B, H, k, d) each."""
        length = k.size(2)
        if length > self.max_length:
            raise ValueError(f"Linformer: sequence length {length} exceeds max_length={self.max_length}; "
                             "raise max_length (the projections E, F have one column per position)")
        if padding_mask is not None:
            real = padding_mask[:, None, :, None].to(k.dtype)
            k, v = k * real, v * real
        e, f = self.E[:, :length].to(k.dtype), self.F[:, :length].to(v.dtype)
        return torch.einsum("kl,bhld->bhkd", e, k), torch.einsum("kl,bhld->bhkd", f, v)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, padding_mask: Tensor | None = None,
                causal: bool = False) -> Tensor:
        if causal:
            raise ValueError("Linformer cannot be causal (each projected key mixes all positions); "
                             "use kernel='linear' or 'performer' with a Causal pattern")
        kp, vp = self.project(k, v, padding_mask)
        out = F.scaled_dot_product_attention(q, kp, vp)
        if padding_mask is not None:
            out = out * padding_mask[:, None, :, None].to(out.dtype)
        return out

    def extra_repr(self) -> str:
        return f"max_length={self.max_length}, k={self.k}"
