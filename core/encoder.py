"""Pre-norm Transformer encoder: blocks of x + attn(norm(x)), x + mlp(norm(x)), with stochastic depth."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from .attend import Backend
from .attention import Kernel, MultiHeadSelfAttention, Position
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
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attn_dropout: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-5, **attention_kwargs):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadSelfAttention(dim, num_heads, attn_dropout=attn_dropout, proj_dropout=dropout,
                                           **attention_kwargs)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
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
    """``depth`` pre-norm blocks and a final LayerNorm; the pattern and masks pass through every block.

    Works on sequences (B, L, dim) and, with an ``EdgeMask`` pattern, on graph nodes (N, dim).
    ``drop_path`` is the rate of the last block, growing linearly from 0 (as in DeiT/timm).
    ``edge_dim``: per-block edge-feature score bias (see ``MultiHeadSelfAttention``); the
    ``EdgeMask`` must then carry ``edge_attr``. ``norm_eps``: of every LayerNorm (torchvision's ViT uses 1e-6).
    ``kernel`` / ``num_features`` / ``max_length`` / ``redraw_interval``: softmax or an O(L) kernel method in
    every block (see ``MultiHeadSelfAttention``).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        score: Literal["dot", "additive"] = "dot",
        additive_activation: Literal["tanh", "leaky_relu"] = "tanh",
        position: Position = "none",
        max_relative_distance: int = 16,
        backend: Backend = "auto",
        edge_dim: int | None = None,
        norm_eps: float = 1e-5,
        kernel: Kernel = "softmax",
        num_features: int = 64,
        max_length: int = 4096,
        redraw_interval: int = 0,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"Encoder depth must be >= 1, got {depth}")
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, num_heads, mlp_ratio, dropout, attn_dropout, rate, score=score,
                         additive_activation=additive_activation, position=position,
                         max_relative_distance=max_relative_distance, backend=backend,
                         edge_dim=edge_dim, norm_eps=norm_eps, kernel=kernel, num_features=num_features,
                         max_length=max_length, redraw_interval=redraw_interval)
            for rate in rates
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: Tensor, pattern: Pattern | None = None, padding_mask: Tensor | None = None,
                return_weights: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        all_weights = []
        for block in self.blocks:
            x, weights = block(x, pattern, padding_mask, return_weights)
            all_weights.append(weights)
        x = self.norm(x)
        return (x, all_weights) if return_weights else x
