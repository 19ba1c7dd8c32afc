"""The block layout of a band: query blocks, their key windows as strided views, and the fold back.

Queries are cut into ``num_blocks`` blocks of ``block`` positions. Block b sees the keys from
b·block - left to b·block + block - 1 + right: a window of ``span = block + left + right`` keys.
``key_windows`` exposes every window as a view of one zero-padded copy of the keys (windows of
neighbouring blocks overlap in memory; nothing of size L·span·D is copied). ``fold`` is its adjoint:
it adds the gradient of every window back onto the keys with ceil(span / block) strided adds of
size L·D, instead of ``unfold``'s generic backward.

``allowed`` is the (B|1, nb, block, span) boolean of the pairs that count: inside the band, a key
inside [0, L), and both ends real. Cost: O(L·span) booleans; everything else here is O(L·D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_ELEMENTS = 1 << 24  # score entries per chunk of blocks when autograd is off (64 MB in float32)


def default_block(width: int) -> int:
    """Query block size: about half the window, so at most ~1.5x the needed scores are computed."""
    return int(min(128, max(16, 2 ** round(math.log2(max(width, 2) / 2)))))


@dataclass(frozen=True)
class BandLayout:
    length: int
    left: int
    right: int
    block: int

    @classmethod
    def of(cls, length: int, left: int, right: int, block: int | None = None) -> BandLayout:
        if length < 1 or left < 0 or right < 0:
            raise ValueError(f"a band needs length >= 1 and left, right >= 0, got length={length}, "
                             f"left={left}, right={right}")
        left, right = min(left, length - 1), min(right, length - 1)  # wider windows change nothing
        block = block or default_block(left + right + 1)
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        return cls(length, left, right, block)

    @property
    def num_blocks(self) -> int:
        return -(-self.length // self.block)

    @property
    def padded(self) -> int:
        return self.num_blocks * self.block

    @property
    def span(self) -> int:
        return self.block + self.left + self.right

    def query_blocks(self, t: Tensor) -> Tensor:
        """(N, L, D) -> (N, nb, block, D), zero-padded at the end."""
        return F.pad(t, (0, 0, 0, self.padded - self.length)).unflatten(1, (self.num_blocks, self.block))

    def key_windows(self, t: Tensor) -> Tensor:
        """(N, L, D) -> (N, nb, span, D): the keys block b sees, a strided view of one padded copy."""
        padded = F.pad(t, (0, 0, self.left, self.padded - self.length + self.right))
        return padded.unfold(1, self.span, self.block).transpose(-1, -2)

    def unblock(self, t: Tensor) -> Tensor:
        """(N, nb, block, D) -> (N, L, D): the inverse of ``query_blocks`` (padding dropped)."""
        return t.flatten(1, 2)[:, : self.length]

    def fold(self, windows: Tensor) -> Tensor:
        """(N, nb, span, D) -> (N, L, D): the sum, over the windows, of each slot's gradient at its key."""
        n, _, _, dim = windows.shape
        nb, block = self.num_blocks, self.block
        total = self.padded + self.left + self.right
        out = windows.new_zeros(n, total + block, dim)  # + block: room for the last, partial, slice
        for t in range(-(-self.span // block)):
            width = min(block, self.span - t * block)
            target = out[:, t * block: t * block + self.padded].unflatten(1, (nb, block))[:, :, :width]
            target += windows[:, :, t * block: t * block + width]
        return out[:, self.left: self.left + self.length]

    def blocks_per_chunk(self, rows: int) -> int:
        """Query blocks per chunk when autograd is off: about ``CHUNK_ELEMENTS`` scores for ``rows`` = B·H."""
        return max(1, CHUNK_ELEMENTS // (rows * self.block * self.span))

    def offsets(self, device) -> Tensor:
        """(block, span) long: j - i of every slot."""
        return (torch.arange(self.span, device=device)[None, :] - torch.arange(self.block, device=device)[:, None]
                - self.left)

    def allowed(self, padding_mask: Tensor | None, device) -> Tensor:
        """(B|1, nb, block, span) bool: the band, keys inside [0, L), real keys of real queries."""
        offsets = self.offsets(device)
        band = (offsets >= -self.left) & (offsets <= self.right)
        real = padding_mask if padding_mask is not None else torch.ones(1, self.length, dtype=torch.bool,
                                                                          device=device)
        key_real = F.pad(real, (self.left, self.padded - self.length + self.right), value=False)
        key_real = key_real.unfold(1, self.span, self.block)  # (B|1, nb, span)
        query_real = F.pad(real, (0, self.padded - self.length), value=False).view(-1, self.num_blocks, self.block)
        return band & key_real[:, :, None, :] & query_real[:, :, :, None]
