"""Block-sparse attention for the sparse patterns (Strided, Global, Longformer, Big Bird) in O(L·k).

A sparse pattern is a union of parts (``core.sparse_patterns.SparseParts``). Each part gathers, for every
query, a fixed number of key slots in a layout where neighbouring queries share their keys, so the
scores are batched matmuls of blocks and never an L×L tensor:

* window — query blocks against the unfolded key window of the block (as the ``banded`` backend),
* stride — the sequence reshaped to (L/s, s): queries with the same residue mod s see the same keys,
  so the part is one dense (L/s × L/s) attention per residue,
* random — each query block against its ``r`` gathered key blocks,
* global keys — every query against the g global keys.

The parts' scores are concatenated along the key axis and share one softmax, so the result is the
exact softmax over the union. A key reachable through two parts counts once: each part masks the slots
an earlier part already covers. Global queries (rows that see every key) are g dense rows computed
apart and written over their positions. Cost: O(L·k) time and memory for k keys per query, plus O(g·L).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..scores import masked_softmax
from ..sparse_patterns import SparseParts
from .banded import default_block


@dataclass
class _Part:
    scores: Tensor  # (B, H, L, kc) one row of key slots per query
    keys: Tensor  # (L, kc) long: key position of each slot (may be outside [0, L): masked)
    valid: Tensor  # (L, kc) bool: the slot belongs to this part's pattern
    apply: Callable[[Tensor], Tensor]  # weights (B, H, L, kc) -> (B, H, L, D)
    covers: Callable[[Tensor, Tensor], Tensor]  # (i, j) position tensors -> bool: j is in this part for i


def _pad_len(t: Tensor, total: int, dim: int = 2) -> Tensor:
    """Zero-pad dimension ``dim`` (the sequence) of t to ``total``."""
    extra = total - t.size(dim)
    if extra == 0:
        return t
    pad = [0, 0] * (t.dim() - 1 - dim) + [0, extra]
    return F.pad(t, pad)


def _window_part(q: Tensor, k: Tensor, v: Tensor, window: int) -> _Part:
    _, _, length, _ = q.shape
    w = min(window, length - 1)
    block = default_block(2 * w + 1)
    nb = -(-length // block)
    padded, span = nb * block, block + 2 * w
    qb = _pad_len(q, padded).unflatten(2, (nb, block))  # (B,H,nb,block,D)
    kw = F.pad(k, (0, 0, w, padded - length + w)).unfold(2, span, block)  # (B,H,nb,D,S)
    vw = F.pad(v, (0, 0, w, padded - length + w)).unfold(2, span, block).transpose(-1, -2)  # (B,H,nb,S,D)
    scores = (qb @ kw).flatten(2, 3)[:, :, :length]
    i = torch.arange(length, device=q.device)[:, None]
    keys = (i // block) * block - w + torch.arange(span, device=q.device)[None, :]
    valid = (keys - i).abs() <= w

    def apply(weights: Tensor) -> Tensor:
        return (_pad_len(weights, padded).unflatten(2, (nb, block)) @ vw).flatten(2, 3)[:, :, :length]

    return _Part(scores, keys, valid, apply, lambda i, j: (j - i).abs() <= window)


def _stride_part(q: Tensor, k: Tensor, v: Tensor, stride: int) -> _Part:
    _, _, length, _ = q.shape
    m = -(-length // stride)  # keys per query (rows of the (m, stride) grid)
    padded = m * stride

    def by_residue(t: Tensor) -> Tensor:  # (B,H,L,D) -> (B,H,stride,m,D): position a·stride + r at [r, a]
        return _pad_len(t, padded).unflatten(2, (m, stride)).transpose(2, 3)

    qs, ks, vs = by_residue(q), by_residue(k), by_residue(v)
    scores = (qs @ ks.transpose(-1, -2)).transpose(2, 3).flatten(2, 3)[:, :, :length]  # (B,H,L,m)
    i = torch.arange(length, device=q.device)[:, None]
    keys = torch.arange(m, device=q.device)[None, :] * stride + i % stride
    valid = torch.ones_like(keys, dtype=torch.bool)

    def apply(weights: Tensor) -> Tensor:
        w = _pad_len(weights, padded).unflatten(2, (m, stride)).transpose(2, 3)  # (B,H,stride,m,m)
        return (w @ vs).transpose(2, 3).flatten(2, 3)[:, :, :length]

    return _Part(scores, keys, valid, apply, lambda i, j: (j - i) % stride == 0)


def _random_part(q: Tensor, k: Tensor, v: Tensor, draw: Tensor, block: int) -> _Part:
    _, _, length, _ = q.shape
    nb, r = draw.shape
    padded = nb * block
    draw = draw.to(q.device)
    qb = _pad_len(q, padded).unflatten(2, (nb, block))
    kr = _pad_len(k, padded).unflatten(2, (nb, block))[:, :, draw].flatten(3, 4)  # (B,H,nb,r·block,D)
    vr = _pad_len(v, padded).unflatten(2, (nb, block))[:, :, draw].flatten(3, 4)
    scores = (qb @ kr.transpose(-1, -2)).flatten(2, 3)[:, :, :length]
    i = torch.arange(length, device=q.device)
    slot = torch.arange(r * block, device=q.device)
    keys = draw[i // block][:, slot // block] * block + slot % block  # (L, r·block)
    valid = torch.ones_like(keys, dtype=torch.bool)
    table = torch.zeros(nb, nb, dtype=torch.bool, device=q.device)
    table[torch.arange(nb, device=q.device)[:, None].expand_as(draw), draw] = True

    def apply(weights: Tensor) -> Tensor:
        return (_pad_len(weights, padded).unflatten(2, (nb, block)) @ vr).flatten(2, 3)[:, :, :length]

    def covers(i: Tensor, j: Tensor) -> Tensor:
        inside = (j >= 0) & (j < padded)
        return table[i // block, j.clamp(0, padded - 1) // block] & inside

    return _Part(scores, keys, valid, apply, covers)


def _global_key_part(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, is_global: Tensor) -> _Part:
    length = q.size(2)
    kg, vg = k[:, :, positions], v[:, :, positions]  # (B,H,g,D)
    scores = q @ kg.transpose(-1, -2)
    keys = positions[None, :].expand(length, -1)
    valid = torch.ones_like(keys, dtype=torch.bool)
    return _Part(scores, keys, valid, lambda w: w @ vg,
                 lambda i, j: is_global[j.clamp(0, length - 1)] & (j >= 0) & (j < length))


def sparse_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    parts: SparseParts,
    padding_mask: Tensor | None,
    scale: float,
    dropout_p: float = 0.0,
) -> Tensor:
    """Exact softmax attention over the union ``parts`` (dot-product scores); q, k, v (B, H, L, D)."""
    batch, heads, length, head_dim = q.shape
    device = q.device
    q = q * scale  # once here (O(L·d)) rather than on every score tile (O(L·k))
    is_global = parts.is_global(device)
    positions = torch.tensor(parts.global_positions, dtype=torch.long, device=device)
    built: list[_Part] = []
    if parts.window is not None:
        built.append(_window_part(q, k, v, parts.window))
    if parts.stride is not None:
        built.append(_stride_part(q, k, v, parts.stride))
    if parts.random_blocks is not None:
        built.append(_random_part(q, k, v, parts.random_blocks, parts.block_size))
    if positions.numel():
        built.append(_global_key_part(q, k, v, positions, is_global))
    real = padding_mask if padding_mask is not None else torch.ones(1, length, dtype=torch.bool, device=device)

    out = q.new_zeros(batch, heads, length, head_dim)
    if built:
        i = torch.arange(length, device=device)[:, None]
        masks = []
        for n, part in enumerate(built):
            inside = (part.keys >= 0) & (part.keys < length)
            allowed = part.valid & inside
            for earlier in built[:n]:  # a key reachable through two parts counts once
                allowed = allowed & ~earlier.covers(i, part.keys)
            key_real = real[:, part.keys.clamp(0, length - 1)]  # (B|1, L, kc)
            masks.append(allowed & key_real & real[:, :, None])
        mask = torch.cat(masks, dim=-1)[:, None]  # (B|1, 1, L, K)
        del masks
        scores = torch.cat([p.scores for p in built], dim=-1)
        for part in built:
            part.scores = None  # the concatenation is all autograd needs: free the parts' tiles
        # torch.softmax keeps only its output for backward (a hand-written masked softmax keeps ~4 tensors
        # of this size); a row with nothing allowed (padded query) is opened to all slots and zeroed below
        empty = ~mask.any(-1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(~(mask | empty), float("-inf")), dim=-1)
        del scores
        if dropout_p > 0:
            weights = F.dropout(weights, dropout_p)
        sizes = [p.keys.size(1) for p in built]
        for part, w in zip(built, weights.split(sizes, dim=-1), strict=True):
            out = out + part.apply(w)
        out = out.masked_fill(empty, 0.0)
    if positions.numel():  # global queries see every real key: g dense rows
        qg = q[:, :, positions]
        row_mask = real[:, None, None, :] & real[:, positions][:, None, :, None]  # (B|1,1,g,L)
        wg = masked_softmax(qg @ k.transpose(-1, -2), row_mask)
        if dropout_p > 0:
            wg = F.dropout(wg, dropout_p)
        out = out.index_copy(2, positions, wg @ v)
    return out
