"""Banded attention with relative-position scores: one score tile per query block, one saved tensor.

score(i, j) = scale · q_i · k_j + scale · q_i · r_clip(j-i) (Shaw et al.; ``RelativePositionBias``).
The relative part is gathered per block from the (block, 2K+1) query terms, which are computed once
per query (O(L·K·D)). The tile (B·H, nb, block, span) is built in place — matmul, + gathered terms,
+ the band/padding mask — and softmaxed; only the weights are kept for backward, whose gradient is
written out by hand: dS = P ∘ (dP - rowsum(dO ∘ O)), the relative terms' gradient a ``scatter_add``
of dS, and the window gradients folded back with ``BandLayout.fold``.

Cost: O(L·span·D) time, O(L·span) memory (one tile, the weights) for backward.

Why an autograd function: SDPA's fused kernel computes this score only with the relative part as a
mask, and a mask that needs a gradient sends SDPA back to its unfused math path (it keeps the scores,
the mask and the weights). Plain autograd over the same ops keeps the score tile, the gathered terms
and the weights (three tiles) and routes the window gradients through ``unfold``'s generic backward.
Saving the weights instead of recomputing them from the log-sum-exp (flash-style) trades one tile of
memory, still linear in L, for a second matmul and exp in backward, which cost more on a CPU.

Rows with nothing allowed are opened to their whole window and their outputs zeroed (value and
gradient exactly zero, never NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .band_fused import band_bias
from .band_layout import BandLayout


def _heads_view(t: Tensor, batch_mask: Tensor) -> Tensor:
    """(B·H, nb, …) -> (B|1, H|B·H, nb, …) so a (B|1, nb, …) mask broadcasts with ``batch_mask[:, None]``."""
    return t.unflatten(0, (batch_mask.size(0), -1))


def _tiles(qs: Tensor, kw: Tensor, vw: Tensor, terms: Tensor, index: Tensor, bias: Tensor,
           empty: Tensor) -> tuple[Tensor, Tensor]:
    """Output (N, n, block, D) and weights (N, n, block, span) of n query blocks (scale already in qs)."""
    scores = torch.matmul(qs, kw.transpose(-1, -2))  # (N, n, block, span)
    scores.add_(terms.gather(-1, index))
    _heads_view(scores, bias).add_(bias[:, None])
    weights = torch.softmax(scores, dim=-1)
    del scores
    out = torch.matmul(weights, vw)
    _heads_view(out, empty).masked_fill_(empty[:, None], 0.0)
    return out, weights


class _BandTiles(torch.autograd.Function):
    """softmax(q kᵀ·scale + gathered relative terms + mask) v over query blocks, weights saved for backward."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, terms: Tensor, index: Tensor, bias: Tensor,
                empty: Tensor, layout: BandLayout, scale: float):
        qs = layout.query_blocks(q * scale)  # (N, nb, block, D)
        kw, vw = layout.key_windows(k), layout.key_windows(v)  # (N, nb, span, D) views
        index = index.expand(*terms.shape[:-1], layout.span)
        out, weights = _tiles(qs, kw, vw, terms, index, bias, empty)
        ctx.save_for_backward(qs, k, v, weights, out, index, empty)
        ctx.layout, ctx.scale, ctx.terms_size = layout, scale, terms.size(-1)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        qs, k, v, weights, out, index, empty = ctx.saved_tensors
        layout = ctx.layout
        kw, vw = layout.key_windows(k), layout.key_windows(v)
        grad = grad.clone()
        _heads_view(grad, empty).masked_fill_(empty[:, None], 0.0)
        d_weights = torch.matmul(grad, vw.transpose(-1, -2))  # (N, nb, block, span)
        d_vw = torch.matmul(weights.transpose(-1, -2), grad)
        delta = (grad * out).sum(-1, keepdim=True)  # = rowsum(P ∘ dP)
        d_scores = d_weights.sub_(delta).mul_(weights)
        d_terms = d_scores.new_zeros(*d_scores.shape[:-1], ctx.terms_size).scatter_add_(-1, index, d_scores)
        d_q = layout.unblock(torch.matmul(d_scores, kw)) * ctx.scale
        d_kw = torch.matmul(d_scores.transpose(-1, -2), qs)
        return d_q, layout.fold(d_kw), layout.fold(d_vw), d_terms, None, None, None, None, None


def tiled_band_attention(q: Tensor, k: Tensor, v: Tensor, layout: BandLayout, padding_mask: Tensor | None,
                         scale: float, relative) -> Tensor:
    """Exact banded attention with scaled dot + relative-position scores; q, k, v (B, H, L, D)."""
    batch, heads, length, dim = q.shape
    allowed = layout.allowed(padding_mask, q.device)
    bias, empty = band_bias(allowed, q.dtype)
    q3, k3, v3 = (t.reshape(batch * heads, length, t.size(-1)) for t in (q, k, v))
    terms = relative.query_terms(layout.query_blocks(q3), scale)  # (N, nb, block, 2K+1)
    index = relative.index(layout.offsets(q.device))  # (block, span)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, terms)):
        out = _BandTiles.apply(q3, k3, v3, terms, index, bias, empty, layout, scale)
    else:  # chunks of blocks: bounded memory for inputs of any length
        qs = layout.query_blocks(q3 * scale)
        kw, vw = layout.key_windows(k3), layout.key_windows(v3)
        chunk = layout.blocks_per_chunk(batch * heads)
        parts = []
        for b0 in range(0, layout.num_blocks, chunk):
            sl = slice(b0, min(b0 + chunk, layout.num_blocks))
            t = terms[:, sl]
            parts.append(_tiles(qs[:, sl], kw[:, sl], vw[:, sl], t, index.expand(*t.shape[:-1], layout.span),
                                bias[:, sl], empty[:, sl])[0])
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return layout.unblock(out).unflatten(0, (batch, heads))
