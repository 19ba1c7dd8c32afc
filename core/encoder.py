"""Pre-norm Transformer encoder: blocks of x + attn(norm(x)), x + mlp(norm(x)), with stochastic depth."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import MultiHeadSelfAttention
from .config import EncoderConfig
from .errors import check_finite
from .patterns import Pattern


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.size(0),) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class EncoderBlock(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x)); ``drop_path``: this block's stochastic-depth rate."""

    def __init__(self, config: EncoderConfig, drop_path: float = 0.0, edge_dim: int | None = None):
        super().__init__()
        dim = config.dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = MultiHeadSelfAttention(dim, config, proj_dropout=config.dropout, edge_dim=edge_dim)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), config.dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, pattern: Pattern | None = None, padding_mask: Tensor | None = None,
                return_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        if return_weights:
            h, weights = self.attn(self.norm1(x), pattern, padding_mask, return_weights=True)
        else:
            h, weights = self.attn(self.norm1(x), pattern, padding_mask), None
        x = x + self.drop_path(h)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, weights


class Encoder(nn.Module):
    """``config.depth`` pre-norm blocks and a final LayerNorm; the pattern and masks pass through every block.

    ``config``: a ``core.EncoderConfig`` (sizes, dropout, stochastic depth, LayerNorm epsilon and every
    attention option, see ``core.config``)::

        Encoder(EncoderConfig(dim=64, depth=2, num_heads=4, position="relative"))

    Works on sequences (B, L, dim) and, with an ``EdgeMask`` pattern, on graph nodes (N, dim).
    ``config.drop_path`` is the rate of the last block, growing linearly from 0 (as in DeiT/timm).
    ``edge_dim``: per-block edge-feature score bias (see ``MultiHeadSelfAttention``); the
    ``EdgeMask`` must then carry ``edge_attr``.
    """

    def __init__(self, config: EncoderConfig, edge_dim: int | None = None):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise ValueError(f"Encoder(config): config must be a core.EncoderConfig, got {type(config).__name__}")
        self.config = config
        depth = config.depth
        rates = [config.drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(EncoderBlock(config, rate, edge_dim) for rate in rates)
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps)

    def forward(self, x: Tensor, pattern: Pattern | None = None, padding_mask: Tensor | None = None,
                return_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        # announced, not raised: the cause may be the data or weights that already went NaN (the NaN guard's
        # warn mode); the apps check their raw inputs where they read them and raise a DataError there
        check_finite(x, "the encoder's input", warn=True)
        all_weights = []
        for block in self.blocks:
            x, weights = block(x, pattern, padding_mask, return_weights)
            all_weights.append(weights)
        x = self.norm(x)
        return (x, all_weights) if return_weights else x
