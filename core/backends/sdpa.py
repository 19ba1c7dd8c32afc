"""PyTorch's fused scaled_dot_product_attention: the fast path for short, dense patterns.

Full and Causal need no mask tensor (is_causal, or a (B, 1, 1, L) key mask for padding).
Any other pattern is handed over as its dense boolean (L, L) mask — correct, but O(L²):
that is the anchor the banded backend is measured against.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..patterns import Causal, Full, Pattern
from .dense import full_mask


def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pattern: Pattern,
    padding_mask: Tensor | None,
    scale: float,
    dropout_p: float = 0.0,
) -> Tensor:
    length = q.size(-2)
    if isinstance(pattern, Full):
        if padding_mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
        keys = padding_mask[:, None, None, :]  # (B, 1, 1, L)
        # A sequence with no real token: let it attend anywhere (finite), zero it below.
        keys = keys | ~padding_mask.any(-1)[:, None, None, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys, dropout_p=dropout_p, scale=scale)
        return out * padding_mask[:, None, :, None].to(out.dtype)
    if isinstance(pattern, Causal) and padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale)
    mask = full_mask(pattern, length, padding_mask, q.device)
    empty = ~mask.any(-1, keepdim=True)  # rows with nothing to attend to
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | empty, dropout_p=dropout_p, scale=scale)
    return out.masked_fill(empty, 0.0)
