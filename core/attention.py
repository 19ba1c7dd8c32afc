"""Multi-head self-attention: q = W^q a, k = W^k a, v = W^v a per head, attend, mix heads with W^o."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attend import Backend, attend
from .config import KERNELS, AttentionConfig, Kernel, KernelConfig, Position
from .linear_attention import LinearAttention
from .linformer import LinformerAttention
from .patterns import Causal, EdgeMask, Full, Pattern
from .performer import PerformerAttention
from .positional import RelativePositionBias, Rotary
from .scores import AdditiveScore

__all__ = ["KERNELS", "Kernel", "MultiHeadSelfAttention", "Position", "make_kernel"]


def make_kernel(kernel: KernelConfig, head_dim: int) -> nn.Module | None:
    """The module computing a kernel method (None for softmax, which goes through ``attend``): the one
    place that reads the kernel-only options."""
    if kernel.kind == "linear":
        return LinearAttention()
    if kernel.kind == "performer":
        return PerformerAttention(head_dim, kernel.num_features, kernel.redraw_interval)
    if kernel.kind == "linformer":
        return LinformerAttention(kernel.max_length, kernel.num_features)
    return None


class MultiHeadSelfAttention(nn.Module):
    """Self-attention over a sequence (B, L, dim) or, with ``EdgeMask``, over graph nodes (N, dim).

    ``attention.score``: "dot" (scaled dot product) or "additive" (a · act(q_i + k_j) per head).
    ``attention.position``: attention-level positions, "rotary" or "relative" (Shaw); absolute
    encodings are added to the inputs by the caller. The weight layout (one fused
    ``qkv`` Linear, ``proj`` = W^o) matches ``torch.nn.MultiheadAttention``'s in/out projections.

    ``in_dim``: size of the input vectors when it differs from ``dim`` (q, k, v = W a map in_dim -> dim), e.g.
    a graph layer reading raw node features. ``out_proj``: mix the heads with W^o (transformer); False
    leaves them concatenated (GAT), which regularises small-data models such as citation graphs.
    ``shared_qkv``: one projection W serves as W^q = W^k = W^v (a third of the weights; GAT likewise scores
    and aggregates the same W a), scores then measure the similarity of the projected vectors.

    ``edge_dim``: graphs only. A Linear ``edge_bias`` (edge_dim -> num_heads) maps each processed
    edge's features (``EdgeMask(..., edge_attr=...)``, see ``EdgeMask.processed_attr``) to a per-head
    additive score bias (Graphormer-style edge encoding). The pattern must then carry edge_attr.

    ``attention``: the layer's options (``core.AttentionConfig``: heads, score, positions, backend, attention
    dropout, kernel); None = the defaults. ``proj_dropout``: after W^o (the encoder's ``dropout``).
    Kernel methods (``attention.kernel.kind`` "linear", "performer", "linformer"; see ``core.KernelConfig``)
    replace the softmax in O(L): they take the dot score on sequences, with pattern ``Full`` or ``Causal``
    (not Linformer), no attention dropout and no ``return_weights``.

        MultiHeadSelfAttention(64, AttentionConfig(num_heads=4, position="rotary"))
    """

    def __init__(
        self,
        dim: int,
        attention: AttentionConfig | None = None,
        *,
        proj_dropout: float = 0.0,
        edge_dim: int | None = None,
        in_dim: int | None = None,
        out_proj: bool = True,
        shared_qkv: bool = False,
    ):
        super().__init__()
        config = AttentionConfig() if attention is None else attention
        if not isinstance(config, AttentionConfig):
            raise ValueError(f"MultiHeadSelfAttention(dim, attention): attention must be a core.AttentionConfig, "
                             f"got {type(config).__name__}")
        kernel, num_heads = config.kernel.kind, config.num_heads
        if kernel != "softmax" and edge_dim is not None:
            raise ValueError(f"kernel={kernel!r} needs score='dot', no relative positions and no edge_dim "
                             f"(got edge_dim={edge_dim!r})")
        if in_dim is not None and (not isinstance(in_dim, int) or in_dim <= 0):
            raise ValueError(f"in_dim must be a positive int or None (= dim), got {in_dim!r}")
        if dim <= 0 or dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        self.config = config
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.score, self.position, self.backend = config.score, config.position, config.backend
        self.in_dim = in_dim or dim
        self.shared_qkv = shared_qkv
        self.qkv = nn.Linear(self.in_dim, dim if shared_qkv else 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim) if out_proj else nn.Identity()
        self.attn_dropout = config.attn_dropout
        self.proj_dropout = nn.Dropout(proj_dropout)
        self.additive = (AdditiveScore(num_heads, self.head_dim, config.additive_activation)
                         if config.score == "additive" else None)
        self.rotary = Rotary(self.head_dim) if config.position == "rotary" else None
        self.relative = (RelativePositionBias(self.head_dim, config.max_relative_distance)
                         if config.position == "relative" else None)
        if edge_dim is not None and (not isinstance(edge_dim, int) or edge_dim <= 0):
            raise ValueError(f"edge_dim must be a positive int or None, got {edge_dim!r}")
        self.edge_dim = edge_dim
        self.edge_bias = nn.Linear(edge_dim, num_heads) if edge_dim is not None else None
        self.kernel = kernel
        self.kernel_attention = make_kernel(config.kernel, self.head_dim)

    def forward(
        self,
        x: Tensor,
        pattern: Pattern | None = None,
        padding_mask: Tensor | None = None,
        return_weights: bool = False,
        backend: Backend | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        pattern = Full() if pattern is None else pattern
        graph = isinstance(pattern, EdgeMask)
        self._check_input(x, padding_mask, graph)
        qkv = self.qkv(x)
        if self.shared_qkv:  # the same vectors as queries, keys and values
            qkv = qkv.repeat(*([1] * (x.dim() - 1)), 3)
        if graph:  # (N, 3·dim) -> three (N, H, D): the layout the edge backend gathers from
            q, k, v = qkv.view(x.size(0), 3, self.num_heads, self.head_dim).unbind(1)
            if self.rotary is not None:  # node index as position; rotate along N
                q, k = (self.rotary(t.transpose(0, 1)).transpose(0, 1) for t in (q, k))
        else:  # (B, L, 3·dim) -> three (B, H, L, D)
            batch, length, _ = x.shape
            q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            if self.rotary is not None:
                q, k = self.rotary(q), self.rotary(k)
        if self.kernel_attention is not None:
            out = self._kernel_forward(q, k, v, pattern, padding_mask, return_weights, graph)
            out = self.proj_dropout(self.proj(out.transpose(1, 2).reshape(*x.shape[:-1], self.dim)))
            return out
        edge_bias = self._edge_bias(pattern, x.size(0)) if self.edge_bias is not None else None
        result = attend(
            q, k, v, pattern, padding_mask, backend or self.backend,
            additive=self.additive, relative=self.relative,
            dropout_p=self.attn_dropout if self.training else 0.0, return_weights=return_weights,
            edge_bias=edge_bias,
        )
        out, weights = result if return_weights else (result, None)
        out = out.reshape(x.size(0), self.dim) if graph else out.transpose(1, 2).reshape(*x.shape[:-1], self.dim)
        out = self.proj_dropout(self.proj(out))
        return (out, weights) if return_weights else out

    def _kernel_forward(self, q: Tensor, k: Tensor, v: Tensor, pattern: Pattern, padding_mask: Tensor | None,
                        return_weights: bool, graph: bool) -> Tensor:
        if graph or return_weights or not isinstance(pattern, (Full, Causal)):
            raise ValueError(f"kernel={self.kernel!r} computes Full or Causal attention over sequences without "
                             f"return_weights; got pattern {pattern!r}, return_weights={return_weights}")
        return self.kernel_attention(q, k, v, padding_mask, causal=isinstance(pattern, Causal))

    def _edge_bias(self, pattern: Pattern, num_nodes: int) -> Tensor:
        """(E', heads) score bias from the processed edge features."""
        if not isinstance(pattern, EdgeMask):
            raise ValueError(f"MultiHeadSelfAttention(edge_dim={self.edge_dim}) needs an EdgeMask pattern "
                             f"with edge_attr of shape (E, {self.edge_dim}), got {pattern!r}")
        if pattern.edge_attr is None:
            raise ValueError(f"MultiHeadSelfAttention(edge_dim={self.edge_dim}) needs edge features: "
                             f"EdgeMask(edge_index, edge_attr=<(E, {self.edge_dim}) tensor>), got none")
        if pattern.edge_dim != self.edge_dim:
            raise ValueError(f"MultiHeadSelfAttention(edge_dim={self.edge_dim}) expects edge_attr of shape "
                             f"(E, {self.edge_dim}), got {tuple(pattern.edge_attr.shape)}")
        attr = pattern.processed_attr(num_nodes).to(self.edge_bias.weight.device, self.edge_bias.weight.dtype)
        return self.edge_bias(attr)

    def _check_input(self, x: Tensor, padding_mask: Tensor | None, graph: bool) -> None:
        rank, layout = (2, "(nodes, dim)") if graph else (3, "(batch, length, dim)")
        if not isinstance(x, Tensor) or x.dim() != rank or x.size(-1) != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"MultiHeadSelfAttention expects x of shape {layout} with dim={self.in_dim}, got {shape}")
        if padding_mask is None:
            return
        expected = x.shape[:-1]
        if padding_mask.dtype != torch.bool or padding_mask.shape != expected:
            raise ValueError(f"padding_mask must be a bool tensor of shape {tuple(expected)} (True = real), "
                             f"got {padding_mask.dtype} {tuple(padding_mask.shape)}")

    def extra_repr(self) -> str:
        extra = f", edge_dim={self.edge_dim}" if self.edge_dim is not None else ""
        extra += f", in_dim={self.in_dim}" if self.in_dim != self.dim else ""
        extra += ", out_proj=False" if isinstance(self.proj, nn.Identity) else ""
        extra += ", shared_qkv=True" if self.shared_qkv else ""
        extra += f", kernel={self.kernel}" if self.kernel != "softmax" else ""
        return f"dim={self.dim}, heads={self.num_heads}, score={self.score}, position={self.position}{extra}"
