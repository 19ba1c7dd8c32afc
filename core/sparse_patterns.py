"""Sparse patterns of the "xx-former" family: strided, global, Longformer and Big Bird.

Like ``core.patterns`` they only describe which keys each query sees, with ``mask(L)`` as the
reference. Each one is a union of up to four parts that the block-sparse backend
(``core/backends/sparse.py``) computes without an L×L tensor:

* window  — keys i-window .. i+window (local attention, as ``Truncated(window, window)``),
* stride  — keys j with (j - i) mod stride == 0 (every stride-th key, aligned on i),
* global  — the global positions attend to every key and every query attends to them,
* random  — Big Bird: each query block attends to ``random_blocks`` key blocks drawn with ``seed``.

``sparse_parts(L)`` returns that description; ``mask(L)`` is built from the same parts, so
the reference and the fast path cannot disagree about what the pattern is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .patterns import Pattern


@dataclass(frozen=True)
class SparseParts:
    """The union a sparse pattern stands for at one length (see the module docstring)."""

    length: int
    window: int | None = None
    stride: int | None = None
    global_positions: tuple[int, ...] = ()
    random_blocks: Tensor | None = None  # (num_blocks, r) long: key blocks of each query block
    block_size: int = 64

    def is_global(self, device=None) -> Tensor:
        """(L,) bool: which positions are global."""
        flags = torch.zeros(self.length, dtype=torch.bool, device=device)
        if self.global_positions:
            flags[torch.tensor(self.global_positions, dtype=torch.long, device=device)] = True
        return flags

    def random_table(self, device=None) -> Tensor | None:
        """(nb, nb) bool: query block a sees key block b (None without random blocks)."""
        if self.random_blocks is None:
            return None
        nb = self.random_blocks.size(0)
        table = torch.zeros(nb, nb, dtype=torch.bool, device=device)
        rows = torch.arange(nb, device=device)[:, None].expand_as(self.random_blocks)
        table[rows, self.random_blocks.to(device)] = True
        return table

    def mask(self, device=None) -> Tensor:
        """(L, L) bool reference mask of the union."""
        length = self.length
        i = torch.arange(length, device=device)[:, None]
        j = torch.arange(length, device=device)[None, :]
        m = torch.zeros(length, length, dtype=torch.bool, device=device)
        if self.window is not None:
            m |= (j - i).abs() <= self.window
        if self.stride is not None:
            m |= (j - i) % self.stride == 0
        if self.global_positions:
            g = self.is_global(device)
            m |= g[:, None] | g[None, :]
        table = self.random_table(device)
        if table is not None:
            m |= table[i // self.block_size, j // self.block_size]
        return m


def _global_positions(tokens: int | list[int], length: int) -> tuple[int, ...]:
    """An int n means the first n positions (e.g. a CLS token); positions >= length are dropped."""
    positions = range(min(tokens, length)) if isinstance(tokens, int) else sorted(set(tokens))
    return tuple(p for p in positions if 0 <= p < length)


def _check_tokens(tokens: int | list[int], name: str) -> int | list[int]:
    if isinstance(tokens, int):
        if tokens < 0:
            raise ValueError(f"{name}: global_tokens must be >= 0, got {tokens}")
        return tokens
    tokens = [int(t) for t in tokens]
    if any(t < 0 for t in tokens):
        raise ValueError(f"{name}: global token positions must be >= 0, got {tokens}")
    return tokens


class SparsePattern(Pattern):
    """Base of the patterns below: ``mask`` comes from ``sparse_parts``."""

    def sparse_parts(self, length: int) -> SparseParts:
        raise NotImplementedError

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        return self.sparse_parts(length).mask(device)

    def keys_per_query(self, length: int) -> int:
        """Upper bound on k, the keys a non-global query sees (the cost is O(L·k))."""
        p = self.sparse_parts(length)
        k = len(p.global_positions)
        k += 2 * p.window + 1 if p.window is not None else 0
        k += -(-length // p.stride) if p.stride is not None else 0
        k += p.random_blocks.size(1) * p.block_size if p.random_blocks is not None else 0
        return min(k, length)


class Strided(SparsePattern):
    """Query i attends to keys i, i ± stride, i ± 2·stride, ... (Sparse Transformer's strided head).

    Every query sees L/stride keys spread over the whole sequence; with stride ≈ √L the cost is O(L·√L).
    """

    def __init__(self, stride: int = 32):
        if stride < 1:
            raise ValueError(f"Strided(stride) needs stride >= 1, got {stride}")
        self.stride = int(stride)

    def sparse_parts(self, length: int) -> SparseParts:
        return SparseParts(length, stride=self.stride)

    def _fields(self) -> dict:
        return {"stride": self.stride}


class Global(SparsePattern):
    """A few global tokens attend to everything and are attended to by everything (e.g. a CLS token).

    ``tokens``: n (the first n positions) or a list of positions. Alone, other queries see the global
    keys only; it is the global part of Longformer and Big Bird.
    """

    def __init__(self, tokens: int | list[int] = 1):
        self.tokens = _check_tokens(tokens, "Global")

    def sparse_parts(self, length: int) -> SparseParts:
        return SparseParts(length, global_positions=_global_positions(self.tokens, length))

    def _fields(self) -> dict:
        return {"tokens": tuple(self.tokens) if isinstance(self.tokens, list) else self.tokens}


class Longformer(SparsePattern):
    """Local window + (optional) strided keys + global tokens (the lecture's Longformer: local, stride, global).

    ``window``: keys on each side of i; ``stride``: add every stride-th key (None: no strided part);
    ``global_tokens``: n (the first n positions) or a list of positions.
    """

    def __init__(self, window: int = 64, stride: int | None = None, global_tokens: int | list[int] = 1):
        if window < 0:
            raise ValueError(f"Longformer(window) needs window >= 0, got {window}")
        if stride is not None and stride < 1:
            raise ValueError(f"Longformer(stride) needs stride >= 1 or None, got {stride}")
        self.window = int(window)
        self.stride = None if stride is None else int(stride)
        self.global_tokens = _check_tokens(global_tokens, "Longformer")

    def sparse_parts(self, length: int) -> SparseParts:
        return SparseParts(length, window=self.window, stride=self.stride,
                           global_positions=_global_positions(self.global_tokens, length))

    def _fields(self) -> dict:
        g = self.global_tokens
        return {"window": self.window, "stride": self.stride, "global_tokens": tuple(g) if isinstance(g, list) else g}


class BigBird(SparsePattern):
    """Local window + global tokens + random key blocks (Zaheer et al. 2020).

    Positions are cut into blocks of ``block_size``; each query block also attends to ``random_blocks``
    key blocks drawn without replacement by a generator seeded with ``seed`` (the same draw for every
    batch, head and call at a given length, so ``mask(L)`` is the pattern the model trains with).
    """

    def __init__(self, window: int = 64, global_tokens: int | list[int] = 1, random_blocks: int = 2,
                 seed: int = 0, block_size: int = 64):
        if window < 0 or random_blocks < 0 or block_size < 1:
            raise ValueError(f"BigBird needs window >= 0, random_blocks >= 0, block_size >= 1, got window={window}, "
                             f"random_blocks={random_blocks}, block_size={block_size}")
        self.window, self.random_blocks = int(window), int(random_blocks)
        self.global_tokens = _check_tokens(global_tokens, "BigBird")
        self.seed, self.block_size = int(seed), int(block_size)
        self._draws: dict[int, Tensor] = {}

    def random_draw(self, length: int) -> Tensor | None:
        """(num_blocks, r) key blocks per query block at this length (cached)."""
        num_blocks = -(-length // self.block_size)
        r = min(self.random_blocks, num_blocks)
        if r == 0:
            return None
        if num_blocks not in self._draws:
            g = torch.Generator().manual_seed(self.seed)
            self._draws[num_blocks] = torch.stack([torch.randperm(num_blocks, generator=g)[:r]
                                                   for _ in range(num_blocks)])
        return self._draws[num_blocks]

    def sparse_parts(self, length: int) -> SparseParts:
        return SparseParts(length, window=self.window, global_positions=_global_positions(self.global_tokens, length),
                           random_blocks=self.random_draw(length), block_size=self.block_size)

    def _fields(self) -> dict:
        g = self.global_tokens
        return {"window": self.window, "global_tokens": tuple(g) if isinstance(g, list) else g,
                "random_blocks": self.random_blocks, "seed": self.seed, "block_size": self.block_size}
