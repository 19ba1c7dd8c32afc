"""FlexAttention block masks (torch.nn.attention.flex_attention) for Full, Causal, Truncated, Neighborhood2D
and the sparse patterns (Strided, Global, Longformer, Big Bird: their union of parts as one mask_mod).

On CUDA the compiled kernel skips key blocks the block mask rules out, so Truncated costs
O(L·w) with fused-kernel speed. On CPU it runs eagerly (for tests), which is O(L²): ``auto``
therefore chooses it on CUDA only. Rows with nothing to attend to are zeroed explicitly.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import Tensor

from ..patterns import Causal, Full, Neighborhood2D, Pattern, Truncated
from ..sparse_patterns import SparsePattern


@functools.cache
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def _sparse_mask_mod(pattern: SparsePattern, length: int, device):
    """The union of the pattern's parts; lookup tables are captured tensors (allowed in mask_mods)."""
    parts = pattern.sparse_parts(length)
    window, stride, block = parts.window, parts.stride, parts.block_size
    is_global = parts.is_global(device) if parts.global_positions else None
    table = parts.random_table(device)

    def allowed(b, h, i, j):
        m = (j - i) != (j - i)  # all False, as a tensor
        if window is not None:
            m = m | ((j - i <= window) & (i - j <= window))
        if stride is not None:
            m = m | ((j - i) % stride == 0)
        if is_global is not None:
            m = m | is_global[i] | is_global[j]
        if table is not None:
            m = m | table[i // block, j // block]
        return m

    return allowed


def neighborhood_mask_mod(pattern: Neighborhood2D, length: int):
    """Neighborhood2D as a mask_mod: prefix rows and columns, else both patches within radius rows and columns
    (integer arithmetic only, so the compiled kernel skips the key blocks outside each query block's window)."""
    prefix, _, cols = pattern.layout(length)
    radius = pattern.radius

    def allowed(b, h, i, j):
        pi, pj = i - prefix, j - prefix
        dr, dc = pi // cols - pj // cols, pi % cols - pj % cols
        near = (dr <= radius) & (-dr <= radius) & (dc <= radius) & (-dc <= radius)
        return near | (pi < 0) | (pj < 0)

    return allowed


def _mask_mod(pattern: Pattern, padding_mask: Tensor | None, length: int = 0, device=None):
    if isinstance(pattern, Neighborhood2D):
        allowed = neighborhood_mask_mod(pattern, length)
    elif isinstance(pattern, SparsePattern):
        allowed = _sparse_mask_mod(pattern, length, device)
    elif isinstance(pattern, Full):
        def allowed(b, h, i, j):
            return i >= 0
    elif isinstance(pattern, Causal):
        def allowed(b, h, i, j):
            return j <= i
    elif isinstance(pattern, Truncated):
        left, right = pattern.left, pattern.right

        def allowed(b, h, i, j):
            return (j - i >= -left) & (j - i <= right)
    else:
        raise ValueError(f"flex backend supports Full, Causal, Truncated, Neighborhood2D and sparse patterns, "
                         f"got {pattern!r}")
    if padding_mask is None:
        return allowed

    def allowed_and_real(b, h, i, j):
        return allowed(b, h, i, j) & padding_mask[b, i] & padding_mask[b, j]

    return allowed_and_real


def flex_attention(
    q: Tensor, k: Tensor, v: Tensor, pattern: Pattern, padding_mask: Tensor | None, scale: float
) -> Tensor:
    from torch.nn.attention.flex_attention import AuxRequest, create_block_mask
    from torch.nn.attention.flex_attention import flex_attention as flex_eager

    batch, _, length, _ = q.shape
    if not q.is_cuda:  # forward-only there (attend refuses autograd); torch checks requires_grad even under no_grad
        q, k, v = q.detach(), k.detach(), v.detach()
    mask_batch = batch if padding_mask is not None else None
    mask_mod = _mask_mod(pattern, padding_mask, length, q.device)
    block_mask = create_block_mask(mask_mod, mask_batch, None, length, length, device=q.device)
    with warnings.catch_warnings():  # eager on CPU is the intended, tested fallback: no nagging
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        kernel = _compiled_flex() if q.is_cuda else flex_eager
        out, aux = kernel(q, k, v, block_mask=block_mask, scale=scale, return_aux=AuxRequest(lse=True))
    # The log-sum-exp is -inf exactly where a row had no allowed key.
    return out.masked_fill(torch.isinf(aux.lse)[..., None], 0.0)
