"""Truncated attention in O(L·w) time and memory: query blocks against their key windows.

Queries are cut into blocks (``BandLayout``); block b only needs a window of span = block + left +
right keys, a strided view of the padded keys. Nothing of size L×L is ever built. Three kernels share
that layout, picked by the score:

* plain scaled dot, no dropout — ``band_fused``: PyTorch's fused SDPA over all blocks at once with an
  additive band mask (flash kernel on CPU: no score tile kept for backward);
* + relative positions, no dropout — ``band_tiles``: one score tile per block built in place, only the
  weights saved, a hand-written backward;
* additive scores or attention dropout — the generic path below: the score tile, mask and softmax
  as ordinary autograd tensors (more memory, still O(L·span)).

The block size follows the window (``default_block``: about half of it, so the tile holds ≤ ~1.5× the
band). Without autograd every kernel runs the blocks in chunks, so memory stays bounded for inputs
of any length (1M frames run forward-only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..scores import Scoring
from .band_fused import band_bias, fused_band_attention
from .band_layout import BandLayout, default_block
from .band_tiles import tiled_band_attention

__all__ = ["banded_attention", "default_block"]


def banded_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    left: int,
    right: int,
    padding_mask: Tensor | None,
    scoring: Scoring,
    dropout_p: float = 0.0,
    block: int | None = None,
) -> Tensor:
    """Exact softmax attention over keys i - left .. i + right; q, k, v (B, H, L, D) -> (B, H, L, D)."""
    layout = BandLayout.of(q.size(2), left, right, block)
    if dropout_p == 0.0 and scoring.additive is None:
        if scoring.relative is None:
            return fused_band_attention(q, k, v, layout, padding_mask, scoring.scale)
        return tiled_band_attention(q, k, v, layout, padding_mask, scoring.scale, scoring.relative)
    return _generic_band_attention(q, k, v, layout, padding_mask, scoring, dropout_p)


def _generic_band_attention(q: Tensor, k: Tensor, v: Tensor, layout: BandLayout, padding_mask: Tensor | None,
                            scoring: Scoring, dropout_p: float) -> Tensor:
    """Any score (additive, relative) and dropout, through autograd; torch.softmax keeps only its output."""
    batch, heads, length, head_dim = q.shape
    q3, k3, v3 = (t.reshape(batch * heads, length, t.size(-1)) for t in (q, k, v))
    q_blocks, k_windows, v_windows = layout.query_blocks(q3), layout.key_windows(k3), layout.key_windows(v3)
    bias, empty = band_bias(layout.allowed(padding_mask, q.device), q.dtype)  # (B|1, nb, block, span)
    rel_terms = rel_index = None
    if scoring.relative is not None:
        rel_terms = scoring.relative.query_terms(q_blocks, scoring.scale)  # (N, nb, block, 2K+1)
        rel_index = scoring.relative.index(layout.offsets(q.device))

    per_pair = head_dim if scoring.additive is not None else 1  # additive scores hold a (…, span, D) hidden
    chunk = layout.num_blocks if torch.is_grad_enabled() else max(1, layout.blocks_per_chunk(batch * heads)
                                                                    // per_pair)
    outputs = []
    for b0 in range(0, layout.num_blocks, chunk):
        sl = slice(b0, min(b0 + chunk, layout.num_blocks))
        qc, kc = q_blocks[:, sl], k_windows[:, sl]
        if scoring.additive is not None:  # (B, H, n, block, span): the score module wants heads at dim 1
            qh, kh = qc.unflatten(0, (batch, heads)), kc.unflatten(0, (batch, heads))
            scores = scoring.additive.pairs(qh[..., :, None, :], kh[..., None, :, :], head_dim=1).flatten(0, 1)
        else:
            scores = (qc @ kc.transpose(-1, -2)) * scoring.scale
        if rel_terms is not None:
            terms = rel_terms[:, sl]
            scores = scores + terms.gather(-1, rel_index.expand(*terms.shape[:-1], layout.span))
        scores = (scores.unflatten(0, (bias.size(0), -1)) + bias[:, None, sl]).flatten(0, 1)
        weights = torch.softmax(scores, dim=-1)
        if dropout_p > 0:
            weights = F.dropout(weights, dropout_p)
        outputs.append(weights @ v_windows[:, sl])
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
    out = out.unflatten(0, (batch, heads)).masked_fill(empty[:, None], 0.0)
    return out.flatten(2, 3)[:, :, :length]
