"""Benchmark-only reference: the banded kernel as it was before the fused rewrite (commit eaf5eae).

Kept so ``benchmarks/attention.py`` and ``benchmarks/festival_speed.py`` can measure old against new in
one run; nothing in ``core`` or the apps imports it. It builds the (B, H, nb, block, span) score
tile, the mask and the hand-written masked softmax as separate autograd tensors and saves them all
for backward. Cost: O(L·span·D) time, ~4 score tiles of memory.

``install()`` routes ``core.attend``'s banded backend to this kernel (for a benchmark process only).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from core.scores import Scoring, masked_softmax

_CHUNK_ELEMENTS = 1 << 24  # score entries per chunk when autograd is off (64 MB in float32)


def default_block(width: int) -> int:
    """Query block size: about half the window, so at most ~1.5x the needed scores are computed."""
    return int(min(128, max(16, 2 ** round(math.log2(max(width, 2) / 2)))))


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
    batch, heads, length, head_dim = q.shape
    left, right = min(left, length - 1), min(right, length - 1)  # wider windows change nothing
    block = block or default_block(left + right + 1)
    num_blocks = -(-length // block)
    padded = num_blocks * block
    span = block + left + right  # keys seen by one query block

    q_blocks = F.pad(q, (0, 0, 0, padded - length)).view(batch, heads, num_blocks, block, head_dim)
    k_windows = F.pad(k, (0, 0, left, padded - length + right)).unfold(2, span, block)  # (B,H,nb,D,S)
    v_windows = F.pad(v, (0, 0, left, padded - length + right)).unfold(2, span, block).transpose(-1, -2)

    real = padding_mask if padding_mask is not None else q.new_ones(1, length, dtype=torch.bool)
    key_real = F.pad(real, (left, padded - length + right), value=False).unfold(1, span, block)  # (B,nb,S)
    query_real = F.pad(real, (0, padded - length), value=False).view(-1, num_blocks, block)  # (B,nb,block)
    offsets = (
        torch.arange(span, device=q.device)[None, :] - torch.arange(block, device=q.device)[:, None] - left
    )  # (block, S): j - i
    band = (offsets >= -left) & (offsets <= right)

    rel_terms = rel_index = None
    if scoring.relative is not None:
        rel_terms = scoring.relative.query_terms(q_blocks, scoring.scale)  # (B,H,nb,block,2K+1)
        rel_index = scoring.relative.index(offsets)

    per_block = batch * heads * block * span * (head_dim if scoring.additive is not None else 1)
    chunk = num_blocks if torch.is_grad_enabled() else max(1, _CHUNK_ELEMENTS // per_block)
    outputs = []
    for b0 in range(0, num_blocks, chunk):
        b1 = min(b0 + chunk, num_blocks)
        qc, kc = q_blocks[:, :, b0:b1], k_windows[:, :, b0:b1]
        if scoring.additive is not None:
            scores = scoring.additive.pairs(qc[..., :, None, :], kc.transpose(-1, -2)[..., None, :, :], head_dim=1)
        else:
            scores = (qc @ kc) * scoring.scale  # (B,H,n,block,S)
        if rel_terms is not None:
            terms = rel_terms[:, :, b0:b1]
            scores = scores + terms.gather(-1, rel_index.expand(*terms.shape[:-1], span))
        mask = band & key_real[:, b0:b1, None, :] & query_real[:, b0:b1, :, None]  # (B,n,block,S)
        weights = masked_softmax(scores, mask[:, None])
        if dropout_p > 0:
            weights = F.dropout(weights, dropout_p)
        outputs.append(weights @ v_windows[:, :, b0:b1])
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
    return out.reshape(batch, heads, padded, head_dim)[:, :, :length]


def install() -> None:
    """Make ``core.attend`` (and so every app) use this reference kernel in the current process."""
    import core.attend

    core.attend.banded_attention = banded_attention
