"""The reference: the textbook formula written out, one (L, L) score matrix per head.

scores = q kᵀ · scale (+ additive, + relative) → mask → softmax over j → weights @ v.
Every other backend is tested equal to this one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..patterns import Pattern
from ..scores import Scoring, masked_softmax


def full_mask(pattern: Pattern, length: int, padding_mask: Tensor | None, device) -> Tensor:
    """(B|1, 1, L, L) boolean mask: the pattern, keys that are real, and queries that are real."""
    mask = pattern.mask(length, device=device)[None, None]
    if padding_mask is not None:
        mask = mask & padding_mask[:, None, None, :] & padding_mask[:, None, :, None]
    return mask


def dense_scores(q: Tensor, k: Tensor, scoring: Scoring) -> Tensor:
    """(B, H, L, L) scores of every (i, j) pair."""
    if scoring.additive is not None:
        scores = scoring.additive.pairs(q[:, :, :, None, :], k[:, :, None, :, :], head_dim=1)
    else:
        scores = (q @ k.transpose(-2, -1)) * scoring.scale
    if scoring.relative is not None:
        length = q.size(-2)
        pos = torch.arange(length, device=q.device)
        idx = scoring.relative.index(pos[None, :] - pos[:, None])  # (L, L) rows of the table
        terms = scoring.relative.query_terms(q, scoring.scale)  # (B, H, L, 2K+1)
        scores = scores + terms.gather(-1, idx.expand(*terms.shape[:2], length, length))
    return scores


def dense_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pattern: Pattern,
    padding_mask: Tensor | None,
    scoring: Scoring,
    dropout_p: float = 0.0,
    return_weights: bool = False,
    score_bias: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``score_bias`` (broadcastable to (B, H, L, L)) is added to the scores before masking."""
    mask = full_mask(pattern, q.size(-2), padding_mask, q.device)
    scores = dense_scores(q, k, scoring)
    if score_bias is not None:
        scores = scores + score_bias
    weights = masked_softmax(scores, mask)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    return dropped @ v, (weights if return_weights else None)
