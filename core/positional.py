"""Positional encodings: self-attention is order-blind, these put positions back.

* absolute, added to the input vectors: ``sinusoidal_positions``, ``LearnedPositions``,
  ``sinusoidal_2d`` (patch grids);
* inside attention: ``RelativePositionBias`` (Shaw et al. 2018, a learned vector per clipped
  distance j - i, dotted with q_i and added to the score) and ``Rotary`` (RoPE: rotate q and k
  so q_i · k_j depends on j - i only).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0, device=None) -> Tensor:
    """(length, dim) table of "Attention Is All You Need": sin on even, cos on odd dimensions."""
    if dim % 2:
        raise ValueError(f"sinusoidal_positions needs an even dim, got {dim}")
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(base) / dim))
    table = torch.empty(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


def sinusoidal_2d(height: int, width: int, dim: int, base: float = 10000.0, device=None) -> Tensor:
    """(height*width, dim) table for a patch grid, row-major: half the dims encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"sinusoidal_2d needs dim divisible by 4, got {dim}")
    rows = sinusoidal_positions(height, dim // 2, base, device)  # (H, dim/2)
    cols = sinusoidal_positions(width, dim // 2, base, device)  # (W, dim/2)
    grid = torch.cat(
        [rows[:, None, :].expand(height, width, -1), cols[None, :, :].expand(height, width, -1)], dim=-1
    )
    return grid.reshape(height * width, dim)


class LearnedPositions(nn.Module):
    """One learned vector per absolute position, up to ``max_len``."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, length: int) -> Tensor:
        if length > self.table.size(0):
            raise ValueError(
                f"LearnedPositions: sequence of length {length} exceeds max_len={self.table.size(0)}; "
                "raise max_len or use relative/rotary positions"
            )
        return self.table[:length]


class RelativePositionBias(nn.Module):
    """Shaw et al. (2018): score(i, j) += scale · q_i · r_clip(j-i, -K, K), one table per layer shared by heads."""

    def __init__(self, head_dim: int, max_distance: int = 16):
        super().__init__()
        if max_distance < 1:
            raise ValueError(f"max_relative_distance must be >= 1, got {max_distance}")
        self.max_distance = max_distance
        self.table = nn.Parameter(torch.zeros(2 * max_distance + 1, head_dim))
        nn.init.trunc_normal_(self.table, std=0.02)

    def query_terms(self, q: Tensor, scale: float) -> Tensor:
        """q (..., D) -> (..., 2K+1): scale · q · r_d for every clipped distance d, computed once per query."""
        return (q @ self.table.t().to(q.dtype)) * scale

    def index(self, offsets: Tensor) -> Tensor:
        """Distances j - i -> rows of the table."""
        return offsets.clamp(-self.max_distance, self.max_distance) + self.max_distance

    def extra_repr(self) -> str:
        return f"max_distance={self.max_distance}, head_dim={self.table.size(1)}"


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021) applied to q and k of shape (..., L, D)."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {head_dim}")
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """Rotate pairs (x[2m], x[2m+1]) by angle position · θ_m; positions default to 0..L-1 along dim -2."""
        length = x.size(-2)
        if positions is None:
            positions = torch.arange(length, device=x.device)
        angles = positions.to(torch.float32)[:, None] * self.inv_freq.to(x.device)[None, :]  # (L, D/2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
