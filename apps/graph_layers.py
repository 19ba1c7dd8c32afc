"""The graph app's layers: one message-passing layer with a common call and the two encoders built from it.

``GraphLayer`` wraps core's edge-masked ``MultiHeadSelfAttention`` or a PyG baseline conv behind one call,
``layer(h, pattern)``, so every layer kind trains in the same skeleton. ``GraphEncoder`` stacks them GAT-style
(h = act(norm(h + layer(h)))); ``ResidualGraphEncoder`` is the shape of the heterophilous benchmark (Platonov et
al., ICLR 2023): pre-norm residual blocks of attention and a feed-forward part, and its "-sep" variant, in which a
node's own representation is kept apart from the attention over its neighbours (``SeparateSelf``). The attention
maths itself stays in ``core``; this module only wires it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from core import AttentionConfig, EdgeMask, MultiHeadSelfAttention, Pattern

Layer = Literal["attention", "gat", "gcn", "transformer_conv"]
ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU}
NORMS = {"layer": nn.LayerNorm, "batch": nn.BatchNorm1d}


def make_norm(kind: str, dim: int) -> nn.Module:
    return NORMS[kind](dim) if kind in NORMS else nn.Identity()


class AdjacencyMask(Pattern):
    """A dense (N, N) boolean pattern: node i attends to node j where ``adjacency[i, j]``. The exportable form of
    an ``EdgeMask`` (whose deduplication has data-dependent sizes, which ``torch.export`` cannot trace): the nodes
    are one sequence and the dense backends mask the scores. Build it with ``dense_adjacency``."""

    def __init__(self, adjacency: Tensor) -> None:
        self.adjacency = adjacency

    def mask(self, length: int, device: torch.device | str | None = None) -> Tensor:
        return self.adjacency if device is None else self.adjacency.to(device)


def dense_adjacency(edge_index: Tensor, num_nodes: int, add_self_loops: bool = True) -> Tensor:
    """(2, E) edges (source, target) -> (N, N) bool with [target, source] set (and the diagonal with self loops):
    the same neighbourhoods as ``EdgeMask(edge_index, add_self_loops).processed(N)``."""
    adjacency = torch.zeros(num_nodes, num_nodes, dtype=torch.bool, device=edge_index.device)
    adjacency[edge_index[1], edge_index[0]] = True
    if add_self_loops:
        adjacency |= torch.eye(num_nodes, dtype=torch.bool, device=edge_index.device)
    return adjacency


class GraphLayer(nn.Module):
    """One message-passing layer in_dim -> out_dim with a common call: ``layer(h, pattern)``.

    ``attention``: core.MultiHeadSelfAttention on ``pattern`` (an EdgeMask); ``mix_heads`` adds W^o after the
    heads (transformer), without it the heads stay concatenated (GAT). The PyG baselines read the same
    processed edges (``pattern.processed(N)``, self loops already in) and edge features.
    ``concat=False`` (an output layer): each head produces all ``out_dim`` values and the heads are averaged.
    """

    def __init__(self, kind: Layer, in_dim: int, out_dim: int, num_heads: int, score: str = "dot",
                 additive_activation: str = "leaky_relu", attn_dropout: float = 0.0, edge_dim: int | None = None,
                 concat: bool = True, mix_heads: bool = True, shared_qkv: bool = False, init: str = "default") -> None:
        super().__init__()
        if concat and out_dim % num_heads:
            raise ValueError(f"a graph layer of width {out_dim} needs it divisible by num_heads={num_heads}")
        self.kind, self.concat, self.heads, self.out_dim = kind, concat, num_heads, out_dim
        per_head = out_dim // num_heads if concat else out_dim
        if kind == "attention":
            width = out_dim if concat else out_dim * num_heads
            attention = AttentionConfig(num_heads=num_heads, score=score, additive_activation=additive_activation,
                                        attn_dropout=attn_dropout)
            self.conv = MultiHeadSelfAttention(width, attention, edge_dim=edge_dim, in_dim=in_dim,
                                               out_proj=mix_heads and concat, shared_qkv=shared_qkv)
            if init == "glorot":  # as GAT: Glorot-uniform per projection (PyTorch's Linear default is ~2x smaller)
                for chunk in self.conv.qkv.weight.data.chunk(1 if shared_qkv else 3, dim=0):
                    nn.init.xavier_uniform_(chunk)
                if self.conv.qkv.bias is not None:
                    nn.init.zeros_(self.conv.qkv.bias)
        elif kind == "gat":
            from torch_geometric.nn import GATConv

            self.conv = GATConv(in_dim, per_head, heads=num_heads, concat=concat, dropout=attn_dropout,
                                add_self_loops=False, edge_dim=edge_dim)
        elif kind == "gcn":
            from torch_geometric.nn import GCNConv

            if edge_dim is not None:
                raise ValueError("model.layer=gcn takes no edge features (edge_dim); use attention, gat or "
                                 "transformer_conv, or set edge_dim: null")
            self.conv = GCNConv(in_dim, out_dim, add_self_loops=False)
        elif kind == "transformer_conv":
            from torch_geometric.nn import TransformerConv

            self.conv = TransformerConv(in_dim, per_head, heads=num_heads, concat=concat, dropout=attn_dropout,
                                        edge_dim=edge_dim)
        else:
            raise ValueError(f"model.layer must be one of attention, gat, gcn, transformer_conv, got {kind!r}")

    def forward(self, h: Tensor, pattern: EdgeMask, return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(N, in_dim) -> (N, out_dim); with ``return_weights`` (attention only) also the (E', heads) weights of
        the edges ``pattern.processed(N)``."""
        if isinstance(pattern, AdjacencyMask):  # the exported dense step: the nodes as one sequence
            if self.kind != "attention" or return_weights:
                raise ValueError(f"a dense adjacency runs attention layers without weights, this is {self.kind}")
            out = self.conv(h[None], pattern=pattern)[0]
            return out if self.concat else out.view(h.size(0), self.heads, self.out_dim).mean(1)
        if self.kind == "attention":
            out, weights = self.conv(h, pattern=pattern, return_weights=True) if return_weights else (
                self.conv(h, pattern=pattern), None)
            out = out if self.concat else out.view(h.size(0), self.heads, self.out_dim).mean(1)
            return (out, weights) if return_weights else out
        if return_weights:
            raise ValueError(f"attention weights need model.layer: attention, this layer is {self.kind}")
        edge_index = pattern.processed(h.size(0))
        if self.kind == "gcn":
            return self.conv(h, edge_index)
        return self.conv(h, edge_index, edge_attr=pattern.processed_attr(h.size(0)))


class GraphEncoder(nn.Module):
    """``depth`` layers of h = act(norm(h + layer(drop(h)))), the first from ``in_dim``, the rest hidden -> hidden.

    The residual applies where a layer keeps the width. No dropout before the first layer: its input was
    dropped by the model already (``input_dropout``; two feature dropouts at 0.6 in a row only add noise)."""

    def __init__(self, in_dim: int, dim: int, depth: int, layer: Layer, num_heads: int, score: str,
                 additive_activation: str, dropout: float, attn_dropout: float, activation: str, norm: str,
                 residual: bool, edge_dim: int | None, mix_heads: bool = True, shared_qkv: bool = False,
                 init: str = "default") -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            GraphLayer(layer, in_dim if i == 0 else dim, dim, num_heads, score, additive_activation, attn_dropout,
                       edge_dim, mix_heads=mix_heads, shared_qkv=shared_qkv, init=init)
            for i in range(depth)
        )
        self.norms = nn.ModuleList(make_norm(norm, dim) for _ in range(depth))
        self.drop = nn.Dropout(dropout)
        self.act = ACTIVATIONS[activation]()
        self.residual = residual

    def forward(self, h: Tensor, pattern: EdgeMask, return_weights: bool = False) -> Tensor | tuple[Tensor, list]:
        all_weights = []
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            out = layer(self.drop(h) if i else h, pattern, return_weights)  # layer 0's input was dropped already
            if return_weights:
                out, weights = out
                all_weights.append(weights)
            h = self.act(norm(h + out if self.residual and out.shape == h.shape else out))
        return (h, all_weights) if return_weights else h


class SeparateSelf(nn.Module):
    """The "-sep" mixing step: W_s [h_i ‖ m_i] with m_i = Σ_{j ∈ N(i)} α(i, j) v_j over the neighbours only.

    A node's own state does not compete with its neighbours in the softmax (the pattern has no self loops), so
    on heterophilous graphs, where neighbours mostly carry other classes, the node keeps its own evidence
    intact and the model learns how much of the neighbourhood to add. A node without neighbours gets m_i = 0.
    """

    def __init__(self, layer: GraphLayer, dim: int) -> None:
        super().__init__()
        self.layer = layer
        self.combine = nn.Linear(2 * dim, dim)

    def forward(self, h: Tensor, pattern: EdgeMask, return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        message = self.layer(h, pattern, return_weights)
        message, weights = message if return_weights else (message, None)
        out = self.combine(torch.cat([h, message], dim=-1))
        return (out, weights) if return_weights else out


class FeedForward(nn.Module):
    """Linear dim -> multiplier·dim, activation, dropout, Linear back, dropout (the block's position-wise part)."""

    def __init__(self, dim: int, multiplier: float, activation: str, dropout: float) -> None:
        super().__init__()
        inner = max(1, round(dim * multiplier))
        self.net = nn.Sequential(nn.Linear(dim, inner), ACTIVATIONS[activation](), nn.Dropout(dropout),
                                 nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)


class ResidualGraphEncoder(nn.Module):
    """``depth`` pre-norm residual blocks, then a final norm:

        h <- h + drop(mix(norm(h)))        mix = layer, or with ``separate_self`` W_s [x ‖ layer(x)]
        h <- h + ffn(norm(h))

    The input is ``act(drop(h))`` of the model's input projection. This is the benchmark's GT / GAT shape
    (Platonov et al. 2023, their "-sep" variants with ``separate_self``); every layer keeps the width, so the
    residual always applies and depth does not wash the node's own features out.
    """

    def __init__(self, dim: int, depth: int, layer: Layer, num_heads: int, score: str, additive_activation: str,
                 dropout: float, attn_dropout: float, activation: str, norm: str, separate_self: bool,
                 ffn_multiplier: float, edge_dim: int | None, mix_heads: bool = True, shared_qkv: bool = False,
                 init: str = "default") -> None:
        super().__init__()

        def mixer() -> nn.Module:
            inner = GraphLayer(layer, dim, dim, num_heads, score, additive_activation, attn_dropout, edge_dim,
                               mix_heads=mix_heads, shared_qkv=shared_qkv, init=init)
            return SeparateSelf(inner, dim) if separate_self else inner

        self.mixers = nn.ModuleList(mixer() for _ in range(depth))
        self.mix_norms = nn.ModuleList(make_norm(norm, dim) for _ in range(depth))
        self.ffns = nn.ModuleList(FeedForward(dim, ffn_multiplier, activation, dropout) for _ in range(depth))
        self.ffn_norms = nn.ModuleList(make_norm(norm, dim) for _ in range(depth))
        self.final_norm = make_norm(norm, dim)
        self.drop = nn.Dropout(dropout)
        self.act = ACTIVATIONS[activation]()

    def forward(self, h: Tensor, pattern: EdgeMask, return_weights: bool = False) -> Tensor | tuple[Tensor, list]:
        h = self.act(self.drop(h))
        all_weights = []
        for mixer, mix_norm, ffn, ffn_norm in zip(self.mixers, self.mix_norms, self.ffns, self.ffn_norms,
                                                  strict=True):
            out = mixer(mix_norm(h), pattern, return_weights)
            if return_weights:
                out, weights = out
                all_weights.append(weights)
            h = h + self.drop(out)
            h = h + ffn(ffn_norm(h))
        h = self.final_norm(h)
        return (h, all_weights) if return_weights else h
