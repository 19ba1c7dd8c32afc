"""``attend``: the one functional entry point — check inputs, pick a backend, run it.

``backend="auto"`` picks the cheapest backend that computes the pattern exactly:

==========================  =====================================================
pattern                     backend
==========================  =====================================================
EdgeMask                    ``edges`` — O(E)
Truncated narrower than L   ``flex`` on CUDA (plain dot score), else ``banded`` — O(L·w)
Strided/Global/Longformer/  ``flex`` on CUDA (plain dot score), else ``sparse`` — O(L·k);
BigBird (sparse patterns)   ``dense`` for additive/relative scores
Neighborhood2D narrower     ``flex`` on CUDA (plain dot score), else ``neighborhood`` —
than the grid               O(N·(k² + prefix)); any score
Full, Causal, short inputs  ``sdpa`` (plain dot score), else ``dense``
``return_weights=True``     ``dense`` (``edges`` for graphs)
==========================  =====================================================

Any backend can be forced with ``backend=...``; one that cannot compute the request raises.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .backends import (
    banded_attention,
    dense_attention,
    edge_attention,
    flex_attention,
    neighborhood_attention,
    sdpa_attention,
    sparse_attention,
)
from .patterns import Causal, EdgeMask, Full, Neighborhood2D, Pattern, Truncated
from .positional import RelativePositionBias
from .scores import AdditiveScore, Scoring
from .sparse_patterns import SparsePattern

Backend = Literal["auto", "dense", "sdpa", "banded", "edges", "flex", "sparse", "neighborhood"]
BACKENDS = ("auto", "dense", "sdpa", "banded", "edges", "flex", "sparse", "neighborhood")
SHORT_SEQUENCE = 128  # below this a masked dense kernel beats the banded one's bookkeeping


def choose_backend(pattern: Pattern, length: int, scoring: Scoring, *, cuda: bool, dropout_p: float,
                   return_weights: bool) -> str:
    """The backend ``auto`` uses for this request (exposed so tests and benchmarks can ask)."""
    if isinstance(pattern, EdgeMask):
        return "edges"
    if return_weights:
        return "dense"
    if isinstance(pattern, Truncated) and not pattern.covers(length) and length > SHORT_SEQUENCE:
        if cuda and scoring.plain_dot and dropout_p == 0.0:
            return "flex"
        return "banded"
    if isinstance(pattern, Neighborhood2D) and not pattern.covers(length) and length > SHORT_SEQUENCE:
        if cuda and scoring.plain_dot and dropout_p == 0.0:
            return "flex"
        return "neighborhood"
    if isinstance(pattern, SparsePattern) and length > SHORT_SEQUENCE and scoring.plain_dot:
        return "flex" if cuda and dropout_p == 0.0 else "sparse"
    return "sdpa" if scoring.plain_dot else "dense"


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pattern: Pattern | None = None,
    padding_mask: Tensor | None = None,
    backend: Backend = "auto",
    *,
    scale: float | None = None,
    additive: AdditiveScore | None = None,
    relative: RelativePositionBias | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
    edge_bias: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention of q over k, v under ``pattern``; q, k, v are (B, heads, L, head_dim).

    For ``EdgeMask`` nodes lie along L with B = 1, or q, k, v are (N, heads, head_dim).
    ``padding_mask`` (B, L), True = real: padded keys get no weight and padded queries
    output zeros. ``additive`` switches the score to a · act(q_i + k_j); ``relative`` adds
    Shaw-style relative-position terms. Returns the output shaped like v, and with
    ``return_weights`` also the weights: (B, heads, L, L), or (E, heads) over
    ``pattern.processed(N)`` for graphs.

    ``edge_bias`` (E', heads), EdgeMask only: an additive score bias per processed edge and head
    (Graphormer-style edge encoding), aligned with ``pattern.processed(N)``; score += bias before
    the softmax. ``MultiHeadSelfAttention(edge_dim=F)`` computes it from ``pattern.processed_attr(N)``.
    """
    pattern = Full() if pattern is None else pattern
    if not isinstance(pattern, Pattern):
        raise ValueError(f"pattern must be a core Pattern (Full, Causal, Truncated, EdgeMask, ...), got {pattern!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    graph_layout = isinstance(pattern, EdgeMask) and q.dim() == 3
    _check_qkv(q, k, v, graph_layout)
    nodes = (q, k, v) if graph_layout else None  # the edges backend works on (N, H, D) directly
    if graph_layout:  # (N, H, D) -> (1, H, N, D) views, so every backend sees one layout
        q, k, v = (t.permute(1, 0, 2).unsqueeze(0) for t in (q, k, v))
        if padding_mask is not None and padding_mask.dim() == 1:
            padding_mask = padding_mask.unsqueeze(0)
    batch, _, length, head_dim = q.shape
    _check_padding_mask(padding_mask, batch, length)
    if isinstance(pattern, EdgeMask) and batch != 1:
        raise ValueError(f"EdgeMask expects one graph (batch the graphs PyG-style into one), got batch size {batch}")

    scoring = Scoring(scale=scale if scale is not None else 1.0 / math.sqrt(head_dim),
                      additive=additive, relative=relative)
    if backend == "auto":
        backend = choose_backend(pattern, length, scoring, cuda=q.is_cuda, dropout_p=dropout_p,
                                 return_weights=return_weights)
    if return_weights and backend not in ("dense", "edges"):
        raise ValueError(f"return_weights=True needs backend 'dense' (or 'edges' for graphs), got {backend!r}")
    if edge_bias is not None:
        _check_edge_bias(edge_bias, pattern, length, q.size(1), backend)

    weights = None
    if backend == "dense":
        score_bias = None
        if edge_bias is not None:  # (E', H) -> (1, H, N, N) at [target, source]; other entries are masked anyway
            src, dst = pattern.processed(length).to(q.device)
            score_bias = edge_bias.new_zeros(length, length, q.size(1)).index_put((dst, src), edge_bias)
            score_bias = score_bias.permute(2, 0, 1).unsqueeze(0)
        out, weights = dense_attention(q, k, v, pattern, padding_mask, scoring, dropout_p, return_weights,
                                       score_bias=score_bias)
    elif backend == "sdpa":
        _require_plain_dot(scoring, "sdpa")
        out = sdpa_attention(q, k, v, pattern, padding_mask, scoring.scale, dropout_p)
    elif backend == "flex":
        _require_plain_dot(scoring, "flex")
        if dropout_p > 0:
            raise ValueError("backend 'flex' has no attention dropout; set dropout_p=0 or use 'banded'/'sdpa'")
        if not q.is_cuda and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
            raise ValueError("backend 'flex' runs forward-only on CPU (no FlexAttention backward there); "
                             "use 'banded'/'sdpa' for training on CPU")
        out = flex_attention(q, k, v, pattern, padding_mask, scoring.scale)
    elif backend == "banded":
        if not isinstance(pattern, (Truncated, Causal)):
            raise ValueError(f"backend 'banded' computes Truncated (and Causal) patterns, got {pattern!r}")
        left, right = (pattern.left, pattern.right) if isinstance(pattern, Truncated) else (length, 0)
        out = banded_attention(q, k, v, left, right, padding_mask, scoring, dropout_p)
    elif backend == "sparse":
        if not isinstance(pattern, SparsePattern):
            raise ValueError(f"backend 'sparse' computes Strided, Global, Longformer and BigBird patterns, "
                             f"got {pattern!r}")
        _require_plain_dot(scoring, "sparse")
        out = sparse_attention(q, k, v, pattern.sparse_parts(length), padding_mask, scoring.scale, dropout_p)
    elif backend == "neighborhood":
        if not isinstance(pattern, Neighborhood2D):
            raise ValueError(f"backend 'neighborhood' computes Neighborhood2D patterns, got {pattern!r}")
        prefix, rows, cols = pattern.layout(length)
        out = neighborhood_attention(q, k, v, prefix, (rows, cols), pattern.radius, padding_mask, scoring, dropout_p)
    else:  # edges
        if not isinstance(pattern, EdgeMask):
            raise ValueError(f"backend 'edges' computes EdgeMask patterns, got {pattern!r}")
        edge_index = pattern.processed(length).to(q.device)
        node_mask = padding_mask[0] if padding_mask is not None else None
        q_n, k_n, v_n = nodes if nodes is not None else (t[0].transpose(0, 1) for t in (q, k, v))
        out_n, edge_weights, kept = edge_attention(q_n, k_n, v_n, edge_index, node_mask, scoring, dropout_p,
                                                   edge_bias=edge_bias, cache=pattern.derived)
        out = out_n if nodes is not None else out_n.transpose(0, 1).unsqueeze(0)
        if return_weights:
            weights = edge_weights if node_mask is None else _align_edge_weights(edge_weights, kept, edge_index)

    if graph_layout and backend != "edges":
        out = out[0].permute(1, 0, 2)
    return (out, weights) if return_weights else out


def _align_edge_weights(weights: Tensor, kept: Tensor, edge_index: Tensor) -> Tensor:
    """Weights over the kept edges -> weights over all of ``edge_index`` (zeros for dropped ones)."""
    num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    key_all = edge_index[1] * num_nodes + edge_index[0]
    key_kept = kept[1] * num_nodes + kept[0]
    position = torch.searchsorted(key_all, key_kept)  # edge_index is sorted by (target, source)
    full = weights.new_zeros(edge_index.size(1), weights.size(1))
    return full.index_copy(0, position, weights)


def _check_edge_bias(edge_bias: Tensor, pattern: Pattern, length: int, heads: int, backend: str) -> None:
    if not isinstance(pattern, EdgeMask):
        raise ValueError(f"edge_bias needs an EdgeMask pattern, got {pattern!r}")
    if backend not in ("dense", "edges"):
        raise ValueError(f"edge_bias needs backend 'edges' (or 'dense', the reference), got {backend!r}")
    num_edges = pattern.processed(length).size(1)
    if not isinstance(edge_bias, Tensor) or edge_bias.shape != (num_edges, heads):
        shape = tuple(edge_bias.shape) if isinstance(edge_bias, Tensor) else type(edge_bias).__name__
        raise ValueError(f"edge_bias must be (E', heads) = ({num_edges}, {heads}), one row per edge of "
                         f"pattern.processed({length}), got {shape}")


def _require_plain_dot(scoring: Scoring, backend: str) -> None:
    if not scoring.plain_dot:
        raise ValueError(f"backend {backend!r} computes the scaled dot product only; "
                         "use backend='auto' or 'dense' for additive or relative scores")


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, graph_layout: bool) -> None:
    expected = "(N, heads, head_dim)" if graph_layout else "(batch, heads, length, head_dim)"
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.dim() != (3 if graph_layout else 4):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"attend: {name} must be {expected}, got shape {shape}")
    if q.shape != k.shape or v.shape[:-1] != q.shape[:-1]:
        raise ValueError(f"attend: q and k must have the same shape and v the same leading dims, "
                         f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")


def _check_padding_mask(padding_mask: Tensor | None, batch: int, length: int) -> None:
    if padding_mask is None:
        return
    if padding_mask.dtype != torch.bool or padding_mask.shape != (batch, length):
        raise ValueError(f"padding_mask must be a bool tensor of shape (batch, length) = ({batch}, {length}) "
                         f"with True for real positions, got {padding_mask.dtype} {tuple(padding_mask.shape)}")
