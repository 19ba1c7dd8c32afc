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

from .errors import ConfigError


class Pattern:
    """Base class. ``mask(L)`` is the reference: True where query i may attend to key j."""

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        raise NotImplementedError

    def for_grid(self, rows: int, cols: int, prefix: int) -> Pattern:
        """This pattern for tokens laid out as ``prefix`` tokens then a rows × cols grid (a ViT calls it with its
        patch grid). 1-D patterns ignore the layout; a 2-D one (``Neighborhood2D``) takes it."""
        return self

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
        for name, value in (("left", left), ("right", right)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
                raise ConfigError(f"Truncated({name}={value!r})", expected=f"{name} >= 0, a whole number of positions",
                                  fix="Give the window in whole positions (a fraction would be cut off).")
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
    (and adds one self loop per node that has none) exactly once per pattern, and sorts
    the edges by (target, source).

    ``edge_attr`` (E, F) (or (E,), read as (E, 1)) are optional edge features, e.g. for
    ``MultiHeadSelfAttention(edge_dim=F)``. ``processed_attr()`` returns them aligned with
    ``processed()``: duplicate edges are merged by their mean (PyG ``coalesce(reduce="mean")``),
    and a self loop added for a node gets the mean of that node's incoming (deduplicated)
    edge features, zeros if it has none (PyG ``add_remaining_self_loops(fill_value="mean")``);
    an existing self loop keeps its own features. The features are treated as input data:
    they are processed once and cached, detached from any autograd graph.
    """

    def __init__(self, edge_index: Tensor, add_self_loops: bool = True, edge_attr: Tensor | None = None):
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
            raise ValueError(f"EdgeMask: edge_index must be a (2, E) tensor of (source, target) rows, got {shape}")
        if edge_index.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"EdgeMask: edge_index must hold integers, got dtype {edge_index.dtype}")
        if edge_attr is not None:
            num_edges = edge_index.size(1)
            if not isinstance(edge_attr, Tensor) or not edge_attr.is_floating_point():
                kind = f"{edge_attr.dtype} tensor" if isinstance(edge_attr, Tensor) else type(edge_attr).__name__
                raise ValueError(f"EdgeMask: edge_attr must be a float tensor of shape (E, F), got a {kind}")
            if edge_attr.dim() == 1:
                edge_attr = edge_attr.unsqueeze(-1)
            if edge_attr.dim() != 2 or edge_attr.size(0) != num_edges:
                raise ValueError(f"EdgeMask: edge_attr must have shape (E, F) with E = {num_edges} "
                                 f"(one row per edge_index column), got {tuple(edge_attr.shape)}")
        self.edge_index = edge_index
        self.add_self_loops = add_self_loops
        self.edge_attr = edge_attr
        self._cache: tuple[int, Tensor, Tensor | None] | None = None
        self._derived: dict = {}  # backends' per-pattern structures (e.g. CSR offsets), keyed by them

    @property
    def edge_dim(self) -> int | None:
        """F, the number of features per edge, or None without ``edge_attr``."""
        return None if self.edge_attr is None else self.edge_attr.size(1)

    def processed(self, num_nodes: int) -> Tensor:
        """Edge index without duplicates, sorted by (target, source), with one self loop per node if asked."""
        return self._process(num_nodes)[0]

    def processed_attr(self, num_nodes: int) -> Tensor | None:
        """``edge_attr`` aligned with ``processed(num_nodes)`` (see the class docstring), or None."""
        return self._process(num_nodes)[1]

    def derived(self, key: tuple, build):
        """``build()`` once per ``key`` for this pattern (backends cache index structures here)."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def _process(self, num_nodes: int) -> tuple[Tensor, Tensor | None]:
        if self._cache is not None and self._cache[0] == num_nodes:
            return self._cache[1], self._cache[2]
        ei = self.edge_index.long()
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= num_nodes):
            raise ValueError(
                f"EdgeMask: edge_index holds node ids in [{int(ei.min())}, {int(ei.max())}], "
                f"expected ids in [0, {num_nodes - 1}] for {num_nodes} nodes"
            )
        with torch.no_grad():
            src, dst = ei
            key = dst * num_nodes + src  # sorting by key sorts by (target, source)
            loops = torch.arange(num_nodes, device=ei.device) * (num_nodes + 1)
            attr = None
            if self.edge_attr is None:
                if self.add_self_loops:
                    key = torch.cat([key[src != dst], loops])
                key = torch.unique(key)  # sorted
            else:
                key, inverse = torch.unique(key, return_inverse=True)
                counts = torch.bincount(inverse, minlength=key.numel()).clamp_min(1)
                attr_in = self.edge_attr.detach().to(ei.device)
                attr = attr_in.new_zeros(key.numel(), attr_in.size(1)).index_add_(0, inverse, attr_in)
                attr = attr / counts.unsqueeze(1).to(attr.dtype)
                if self.add_self_loops:
                    s, d = key % num_nodes, key // num_nodes
                    is_loop = s == d
                    missing = torch.ones(num_nodes, dtype=torch.bool, device=ei.device)
                    missing[d[is_loop]] = False
                    d_in, attr_nl = d[~is_loop], attr[~is_loop]
                    fill = attr.new_zeros(num_nodes, attr.size(1)).index_add_(0, d_in, attr_nl)
                    fill = fill / torch.bincount(d_in, minlength=num_nodes).clamp_min(1).unsqueeze(1).to(attr.dtype)
                    key = torch.cat([key, loops[missing]])
                    attr = torch.cat([attr, fill[missing]])
                    key, order = key.sort()
                    attr = attr.index_select(0, order)
            ei = torch.stack([key % num_nodes, key // num_nodes])
        self._cache = (num_nodes, ei, attr)
        self._derived = {}
        return ei, attr

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        src, dst = self.processed(length)
        m = torch.zeros(length, length, dtype=torch.bool, device=device)
        m[dst.to(m.device), src.to(m.device)] = True
        return m

    def __repr__(self) -> str:
        extra = f", edge_dim={self.edge_dim}" if self.edge_attr is not None else ""
        return f"EdgeMask(edges={self.edge_index.size(1)}, add_self_loops={self.add_self_loops}{extra})"

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class Neighborhood2D(Pattern):
    """Patch (r, c) of a ``grid`` of rows × cols attends to the patches within ``radius`` rows and columns of it.

    Tokens are the ``prefix`` tokens (class / register / global) followed by the patches in row-major order, so
    patch (r, c) is token ``prefix + r·cols + c``. The window is the (2·radius+1)² square around the patch,
    clipped at the grid's borders; the prefix tokens see every token and every token sees them. Why: images are
    local first (a convolution's prior, as in neighbourhood attention / NAT); a ViT with it costs
    O(N·(k² + prefix)) for N patches and k = 2·radius + 1 instead of O(N²), and a radius as large as the grid is
    ``Full``.

    ``grid=None`` leaves the grid to the model that uses the pattern: the ViT fills in (image / patch size) and its
    number of class tokens as ``prefix`` (``for_grid``). ``mask(L)`` needs L = prefix + rows·cols.
    """

    def __init__(self, radius: int = 2, grid: tuple[int, int] | list[int] | None = None, prefix: int = 0):
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ConfigError(f"Neighborhood2D(radius={radius!r})", expected="radius >= 0, a whole number of patches",
                              fix="Give the radius in patches: 1 is a 3x3 window, 2 a 5x5 window.")
        if grid is not None:
            cells = tuple(grid)
            if len(cells) != 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in cells):
                raise ConfigError(f"Neighborhood2D(grid={grid!r})",
                                  expected="grid = (rows, cols), two whole numbers >= 1",
                                  fix="Give the patch grid, e.g. grid: [8, 8], or leave it out in a ViT.")
            grid = cells
        if isinstance(prefix, bool) or not isinstance(prefix, int) or prefix < 0:
            raise ConfigError(f"Neighborhood2D(prefix={prefix!r})", expected="prefix >= 0 tokens before the patches",
                              fix="Give the number of class/register tokens in front of the patches (0 without).")
        self.radius, self.grid, self.prefix = radius, grid, prefix

    @property
    def width(self) -> int:
        """k: the window's side in patches (k² keys per patch query away from the borders)."""
        return 2 * self.radius + 1

    def for_grid(self, rows: int, cols: int, prefix: int) -> Neighborhood2D:
        """This pattern on a model's grid: fills in a missing grid (and its prefix); a given one must match."""
        if self.grid is None:
            return Neighborhood2D(self.radius, (rows, cols), prefix)
        if self.grid != (rows, cols) or self.prefix != prefix:
            raise ConfigError(f"Neighborhood2D(grid={list(self.grid)}, prefix={self.prefix})",
                              expected=f"the model's grid [{rows}, {cols}] with prefix {prefix}",
                              fix="Leave grid and prefix out: the model fills them in from its image and patch size.")
        return self

    def layout(self, length: int) -> tuple[int, int, int]:
        """(prefix, rows, cols) for a sequence of ``length`` tokens; raises if they do not fit."""
        if self.grid is None:
            raise ValueError("Neighborhood2D has no grid: give grid=(rows, cols) (a ViT fills it in itself)")
        rows, cols = self.grid
        if length != self.prefix + rows * cols:
            raise ValueError(f"Neighborhood2D(grid={self.grid}, prefix={self.prefix}) expects "
                             f"{self.prefix + rows * cols} tokens, got {length}")
        return self.prefix, rows, cols

    def covers(self, length: int) -> bool:
        """True when the window spans the whole grid from every patch, so the pattern is ``Full``."""
        _, rows, cols = self.layout(length)
        return self.radius >= max(rows, cols) - 1

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        prefix, rows, cols = self.layout(length)
        pos = torch.arange(length, device=device) - prefix
        row, col = pos.div(cols, rounding_mode="floor"), pos % cols
        near_rows = (row[:, None] - row[None, :]).abs() <= self.radius
        near = near_rows & ((col[:, None] - col[None, :]).abs() <= self.radius)
        is_prefix = pos < 0
        return near | is_prefix[:, None] | is_prefix[None, :]

    def _fields(self) -> dict:
        return {"radius": self.radius, "grid": self.grid, "prefix": self.prefix}
