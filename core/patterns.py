"""Attention patterns: *which* keys j each query i may attend to.

A pattern is pure description. Backends decide *how* to compute it; every pattern can
also produce the boolean (L, L) mask that the dense reference uses, so a fast path can
always be checked against the textbook formula.

Patterns are plain classes with keyword constructors so a YAML line such as
``pattern: {class_path: core.Truncated, init_args: {left: 64, right: 64}}`` selects one.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Pattern:
    """Base class. ``mask(L)`` is the reference: True where query i may attend to key j."""

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self._fields().items())))

    def _fields(self) -> dict:
        return {}


class Full(Pattern):
    """Every query attends to every key (POS tagging, ViT)."""

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        return torch.ones(length, length, dtype=torch.bool, device=device)


class Causal(Pattern):
    """Query i attends to keys j <= i (autoregressive models, streaming)."""

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class Truncated(Pattern):
    """Query i attends to keys i-left .. i+right ("attention in a range", speech).

    ``Truncated(left=L, right=0)`` with L >= length equals ``Causal``; a window wider than
    the sequence equals ``Full``.
    """

    def __init__(self, left: int = 64, right: int = 64):
        if left < 0 or right < 0:
            raise ValueError(f"Truncated(left, right) needs left >= 0 and right >= 0, got left={left}, right={right}")
        self.left = int(left)
        self.right = int(right)

    @property
    def width(self) -> int:
        """Keys per query when the window is not cut by the sequence ends."""
        return self.left + self.right + 1

    def covers(self, length: int) -> bool:
        """True when the window is wider than the sequence, so the pattern is ``Full``."""
        return self.left >= length - 1 and self.right >= length - 1

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        # Band of diagonals -left..right, built in place on one bool matrix (no int64 offsets).
        return torch.ones(length, length, dtype=torch.bool, device=device).triu_(-self.left).tril_(self.right)

    def _fields(self) -> dict:
        return {"left": self.left, "right": self.right}


class EdgeMask(Pattern):
    """Node i attends to node j for every edge j -> i (and to itself with ``add_self_loops``).

    ``edge_index`` is PyG's (2, E) long tensor of (source, target) rows. Attention is a
    set relation, so duplicate edges count once: ``processed()`` removes duplicates
    (and existing self loops before adding one per node) exactly once per pattern.
    """

    def __init__(self, edge_index: Tensor, add_self_loops: bool = True):
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
            raise ValueError(f"EdgeMask: edge_index must be a (2, E) tensor of (source, target) rows, got {shape}")
        if edge_index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"EdgeMask: edge_index must hold integers, got dtype {edge_index.dtype}")
        self.edge_index = edge_index
        self.add_self_loops = add_self_loops
        self._cache: tuple[int, Tensor] | None = None

    def processed(self, num_nodes: int) -> Tensor:
        """Edge index without duplicates, sorted by target, with one self loop per node if asked."""
        if self._cache is not None and self._cache[0] == num_nodes:
            return self._cache[1]
        from torch_geometric.utils import add_self_loops, coalesce, remove_self_loops

        ei = self.edge_index.long()
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
            raise ValueError(
                f"EdgeMask: edge_index holds node ids in [{int(ei.min())}, {int(ei.max())}], "
                f"expected ids in [0, {num_nodes - 1}] for {num_nodes} nodes"
            )
        if self.add_self_loops:
            ei, _ = remove_self_loops(ei)
            ei, _ = add_self_loops(ei, num_nodes=num_nodes)
        # coalesce sorts by (row, col); sorting by target first groups each node's incoming edges.
        target_major = coalesce(ei.flip(0), num_nodes=num_nodes)
        ei = target_major.flip(0)
        self._cache = (num_nodes, ei)
        return ei

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        src, dst = self.processed(length)
        m = torch.zeros(length, length, dtype=torch.bool, device=device)
        m[dst.to(m.device), src.to(m.device)] = True
        return m

    def __repr__(self) -> str:
        return f"EdgeMask(edges={self.edge_index.size(1)}, add_self_loops={self.add_self_loops})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)
