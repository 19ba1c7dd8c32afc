"""Fused banded attention for the plain scaled dot product: one fused SDPA call over all query blocks.

Every query block against its key window is a small dense attention with a mask, which is exactly
what ``torch.nn.functional.scaled_dot_product_attention`` computes. The blocks are laid out as its
(batch, heads) axes — (B·H, nb, block, D) queries against (B·H, nb, span, D) key windows, strided views
of one padded copy (``BandLayout``) — and the band, the sequence ends and the padding go in as one
additive float mask (0 allowed, -inf not). On CPU PyTorch then runs its fused flash kernel forward
and backward: it keeps only the output and the log-sum-exp per query, never a score tile, for autograd.

Cost: O(L·span·D) time, span = block + left + right (~1.5× the band at the default block);
memory O(L·D) saved for backward plus the O(L·span) mask.

Why an autograd function: SDPA's backward returns the gradient of each key *window*; letting
autograd route it through ``unfold`` costs a generic scatter (plus a zero-fill) per window slot.
``_BandSDPA`` folds the window gradients back with a few strided adds (``BandLayout.fold``).
A mask that required grad would make SDPA fall back to its unfused math path, so the mask never
does: relative-position scores go to ``band_tiles`` instead.

Rows with nothing allowed (padded queries, the padding after the last block) are opened to their
whole window, so the kernel never sees an all ``-inf`` row, and their outputs are zeroed afterwards:
zeros in value and in gradient, never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .band_layout import BandLayout


def band_bias(allowed: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(B|1, nb, block, span) bool -> additive mask (0 / -inf; empty rows all 0) and the empty rows (…, 1)."""
    empty = ~allowed.any(-1, keepdim=True)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill_(~(allowed | empty), float("-inf")), empty


def _per_head(mask: Tensor, heads: int) -> Tensor:
    """(B|1, nb, …) -> (B·H|1, nb, …): one mask row per (batch, head), as SDPA's batch axis is B·H."""
    if mask.size(0) == 1:
        return mask
    return mask[:, None].expand(-1, heads, *mask.shape[1:]).flatten(0, 1)


class _BandSDPA(torch.autograd.Function):
    """SDPA over query blocks whose key/value gradients are folded back from the windows by hand."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, layout: BandLayout, scale: float):
        qb = layout.query_blocks(q).detach().requires_grad_()
        kw = layout.key_windows(k).detach().requires_grad_()
        vw = layout.key_windows(v).detach().requires_grad_()
        with torch.enable_grad():
            out = F.scaled_dot_product_attention(qb, kw, vw, attn_mask=bias, scale=scale)
        ctx.graph = (out, qb, kw, vw)
        ctx.layout = layout
        return out.detach()

    @staticmethod
    def backward(ctx, grad: Tensor):
        out, qb, kw, vw = ctx.graph
        del ctx.graph
        layout = ctx.layout
        dq, dk, dv = torch.autograd.grad(out, (qb, kw, vw), grad)
        return layout.unblock(dq), layout.fold(dk), layout.fold(dv), None, None, None


def fused_band_attention(q: Tensor, k: Tensor, v: Tensor, layout: BandLayout, padding_mask: Tensor | None,
                         scale: float) -> Tensor:
    """Exact banded softmax(q kᵀ · scale) v; q, k, v (B, H, L, D) -> (B, H, L, D)."""
    batch, heads, length, dim = q.shape
    allowed = layout.allowed(padding_mask, q.device)
    bias, empty = band_bias(allowed, q.dtype)
    q3, k3, v3 = (t.reshape(batch * heads, length, t.size(-1)) for t in (q, k, v))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        out = _BandSDPA.apply(q3, k3, v3, _per_head(bias, heads), layout, scale)
    else:  # chunks of blocks: bounded memory for inputs of any length
        chunk = layout.blocks_per_chunk(batch * heads)
        q_blocks = layout.query_blocks(q3)
        k_windows, v_windows = layout.key_windows(k3), layout.key_windows(v3)
        parts = []
        for b0 in range(0, layout.num_blocks, chunk):
            b1 = min(b0 + chunk, layout.num_blocks)
            mask = _per_head(bias[:, b0:b1], heads)
            parts.append(F.scaled_dot_product_attention(q_blocks[:, b0:b1], k_windows[:, b0:b1],
                                                        v_windows[:, b0:b1], attn_mask=mask, scale=scale))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    out = out.unflatten(0, (batch, heads)).masked_fill(_per_head_empty(empty), 0.0)
    return out.flatten(2, 3)[:, :, :length]


def _per_head_empty(empty: Tensor) -> Tensor:
    """(B|1, nb, block, 1) -> (B|1, 1, nb, block, 1), to broadcast over (B, H, nb, block, D)."""
    return empty[:, None]
