"""Neighbourhood attention on a patch grid (``Neighborhood2D``) in O(N·(k² + prefix)), never N×N.

The 2-D form of the banded idea. Patch keys and values are laid out as the (rows, cols) grid, padded by the
radius on each side, and ``Tensor.unfold`` along both grid axes gives every patch its k×k window of keys as a
strided view (its backward is the matching fold, a sum); the copy the matmul makes is O(N·k²·D), the size of
the band, not of the sequence squared. Each window slot has a key index table (N, k²) with a validity mask
(slots outside the grid, or padded keys, are masked), so relative positions (distance j − i of the flat token
indices, as in ``dense``) and additive scores are gathered per slot like in ``banded``. The prefix keys
(class / register tokens) are k·prefix more columns of the same softmax; the prefix queries see every key and
are ``prefix`` dense rows. One shared ``masked_softmax`` over [window slots, prefix keys] makes it the exact
softmax over the pattern.

Why not the block-sparse backend: its window part is a band of the flat sequence, and a 2-D window of radius r
spans 2·r·cols + 1 flat positions, so it would cost O(N·r·cols), not O(N·r²). With k = min(2r+1, side) per
axis, time and memory are O(B·H·N·(k² + prefix)·D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..scores import Scoring, masked_softmax


def window_keys(prefix: int, rows: int, cols: int, rr: int, rc: int, device=None) -> tuple[Tensor, Tensor]:
    """(N, kr·kc) token index of every window slot of every patch query, and whether the slot is on the grid;
    rr, rc: the radius clipped to the grid along rows and columns (kr = 2·rr + 1, kc = 2·rc + 1)."""
    r = torch.arange(rows, device=device)[:, None, None, None] + torch.arange(-rr, rr + 1, device=device)[:, None]
    c = torch.arange(cols, device=device)[None, :, None, None] + torch.arange(-rc, rc + 1, device=device)
    r, c = torch.broadcast_tensors(r, c)  # (rows, cols, kr, kc)
    valid = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    keys = prefix + r.clamp(0, rows - 1) * cols + c.clamp(0, cols - 1)
    return keys.reshape(rows * cols, -1), valid.reshape(rows * cols, -1)


def _windows(t: Tensor, prefix: int, rows: int, cols: int, rr: int, rc: int) -> Tensor:
    """(B, H, L, D) -> (B, H, N, kr·kc, D): each patch's window of t (zeros off the grid)."""
    grid = t[:, :, prefix:].unflatten(2, (rows, cols))  # (B, H, rows, cols, D)
    grid = F.pad(grid, (0, 0, rc, rc, rr, rr))
    win = grid.unfold(2, 2 * rr + 1, 1).unfold(3, 2 * rc + 1, 1)  # (B, H, rows, cols, D, kr, kc), a view
    return win.flatten(-2).transpose(-1, -2).flatten(2, 3)


def _scores(q: Tensor, keys: Tensor, key_pos: Tensor, query_pos: Tensor, scoring: Scoring) -> Tensor:
    """Scores of queries q (B, H, n, D) against keys (B, H, n, K, D) or (B, H, K, D) at token positions
    key_pos (n, K) for queries at query_pos (n,); the same formula as ``dense_scores``."""
    per_query = keys.dim() == 5
    if scoring.additive is not None:
        kk = keys if per_query else keys[:, :, None]
        scores = scoring.additive.pairs(q[..., None, :], kk, head_dim=1)
    elif per_query:
        scores = (q[..., None, :] @ keys.transpose(-1, -2)).squeeze(-2) * scoring.scale
    else:
        scores = (q @ keys.transpose(-1, -2)) * scoring.scale
    if scoring.relative is not None:
        terms = scoring.relative.query_terms(q, scoring.scale)  # (B, H, n, 2M+1)
        idx = scoring.relative.index(key_pos - query_pos[:, None])
        scores = scores + terms.gather(-1, idx.expand(*terms.shape[:2], *idx.shape))
    return scores


def neighborhood_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    prefix: int,
    grid: tuple[int, int],
    radius: int,
    padding_mask: Tensor | None,
    scoring: Scoring,
    dropout_p: float = 0.0,
) -> Tensor:
    """Exact softmax attention under ``Neighborhood2D(radius, grid, prefix)``; q, k, v (B, H, L, D) -> (B, H, L, D)."""
    length = q.size(2)
    rows, cols = grid
    device = q.device
    rr, rc = min(radius, rows - 1), min(radius, cols - 1)
    real = padding_mask if padding_mask is not None else torch.ones(1, length, dtype=torch.bool, device=device)
    positions = torch.arange(length, device=device)
    pre_pos = positions[:prefix]

    # patch queries: their window slots, then the prefix keys
    keys, valid = window_keys(prefix, rows, cols, rr, rc, device)
    qp, pos_p = q[:, :, prefix:], positions[prefix:]
    k_win, v_win = _windows(k, prefix, rows, cols, rr, rc), _windows(v, prefix, rows, cols, rr, rc)
    scores = _scores(qp, k_win, keys, pos_p, scoring)  # (B, H, N, K)
    mask = valid & real[:, keys] & real[:, prefix:, None]  # (B|1, N, K)
    if prefix:
        pre_scores = _scores(qp, k[:, :, :prefix], pre_pos.expand(rows * cols, -1), pos_p, scoring)
        scores = torch.cat([scores, pre_scores], dim=-1)
        mask = torch.cat([mask, real[:, None, :prefix] & real[:, prefix:, None]], dim=-1)
    weights = masked_softmax(scores, mask[:, None])
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    slots = keys.size(1)
    out = (weights[..., None, :slots] @ v_win).squeeze(-2)
    if not prefix:
        return out
    out = out + weights[..., slots:] @ v[:, :, :prefix]

    # prefix queries: dense rows over every real key
    rows_scores = _scores(q[:, :, :prefix], k, positions.expand(prefix, -1), pre_pos, scoring)  # (B, H, P, L)
    row_mask = real[:, None, None, :] & real[:, None, :prefix, None]
    w_pre = masked_softmax(rows_scores, row_mask)
    if dropout_p > 0:
        w_pre = F.dropout(w_pre, dropout_p)
    return torch.cat([w_pre @ v, out], dim=2)
