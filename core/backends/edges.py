"""Edge-masked attention in O(E) memory: node i attends only to its in-neighbours j -> i.

Two paths compute the same thing:

* **fast** (scaled dot product, optionally + ``edge_bias``, dropout, node mask): a custom autograd
  Function on sparse CSR matrices. The H heads become one block-diagonal (H·N, H·N) CSR matrix
  whose rows are the targets (edges are sorted by target, so the row offsets are a cumulative
  degree count), with the same sparsity for scores, weights and their gradients:

  - scores  = SDDMM(q, kᵀ) on the edges (``torch.sparse.sampled_addmm``, + edge_bias as its input),
  - weights = segment softmax along each row (``torch.segment_reduce`` max and sum),
  - out     = weights @ v (CSR × dense, MKL on CPU),
  - backward: dW = SDDMM(dout, vᵀ), dS = W ∘ (dW - rowsum(W ∘ dW)), dq = dS @ k · scale,
    dk = dSᵀ @ q · scale and dv = Wᵀ @ dout, with Wᵀ a second CSR over the edges sorted by source
    (a permutation computed once per pattern).

  Nothing of size E × head_dim is ever built; autograd keeps q, k, v (head-major copies), the
  weights (E·H) and the dropout mask. The CSR index structures are cached on the pattern.

* **generic** (additive and relative scores): gather q of each edge's target and k, v of its
  source, score each edge, softmax over the edges that enter the same node
  (torch_geometric.utils.softmax), and sum the weighted values back onto the targets with autograd.

A node without incoming edges gets zeros. Both paths are tested equal to the dense reference.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch_geometric.utils import softmax as edge_softmax

from ..scores import Scoring


def edge_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    edge_index: Tensor,
    node_mask: Tensor | None,
    scoring: Scoring,
    dropout_p: float = 0.0,
    edge_bias: Tensor | None = None,
    cache=None,
    fast: bool | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v (N, H, D); edge_index (2, E) deduplicated and sorted by (target, source); edge_bias (E, H).

    Returns output (N, H, D), weights (E', H) over the edges kept, and the edges kept (all of them
    without ``node_mask``; masked nodes neither send nor receive). ``cache(key, build)`` (e.g.
    ``EdgeMask.derived``) memoises the CSR structures of the fast path. ``fast=None`` takes the fast
    path whenever the score is the plain scaled dot product; ``fast=False`` forces the generic one.
    """
    if fast is None:
        fast = scoring.plain_dot
    if fast and not scoring.plain_dot:
        raise ValueError("the fast edge path computes the scaled dot product only (+ edge_bias)")
    if fast:
        return _fast_edge_attention(q, k, v, edge_index, node_mask, scoring.scale, dropout_p, edge_bias, cache)
    return _generic_edge_attention(q, k, v, edge_index, node_mask, scoring, dropout_p, edge_bias)


def dropout_scale(num_edges: int, heads: int, p: float, device, dtype) -> Tensor:
    """(E, H) keep-mask / (1 - p): both paths draw dropout this way, so a seed gives both the same mask."""
    return torch.empty(num_edges, heads, device=device, dtype=dtype).bernoulli_(1.0 - p).div_(1.0 - p)


# ---- generic path ---------------------------------------------------------------------------------


def _generic_edge_attention(q, k, v, edge_index, node_mask, scoring, dropout_p, edge_bias):
    num_nodes = q.size(0)
    if node_mask is not None:  # masked nodes neither send nor receive
        keep = node_mask[edge_index[0]] & node_mask[edge_index[1]]
        edge_index = edge_index[:, keep]
        if edge_bias is not None:
            edge_bias = edge_bias[keep]
    src, dst = edge_index
    q_i, k_j = q.index_select(0, dst), k.index_select(0, src)  # (E, H, D)
    if scoring.additive is not None:
        scores = scoring.additive.pairs(q_i, k_j, head_dim=-1)
    else:
        scores = (q_i * k_j).sum(-1) * scoring.scale  # (E, H)
    if scoring.relative is not None:
        terms = scoring.relative.query_terms(q, scoring.scale)  # (N, H, 2K+1)
        idx = scoring.relative.index(src - dst)
        rows = terms.index_select(0, dst)  # (E, H, 2K+1)
        scores = scores + rows.gather(-1, idx.view(-1, 1, 1).expand(-1, rows.size(1), 1)).squeeze(-1)
    if edge_bias is not None:
        scores = scores + edge_bias
    weights = edge_softmax(scores, dst, num_nodes=num_nodes)  # (E, H)
    if dropout_p > 0:
        dropped = weights * dropout_scale(weights.size(0), weights.size(1), dropout_p, weights.device, weights.dtype)
    else:
        dropped = weights
    messages = dropped.unsqueeze(-1) * v.index_select(0, src)  # (E, H, D)
    out = torch.zeros_like(q).index_add_(0, dst, messages)
    return out, weights, edge_index


# ---- fast path ------------------------------------------------------------------------------------


@dataclass
class _Csr:
    """Index structures of the block-diagonal (H·N, H·N) matrices, built once per pattern and heads."""

    num_nodes: int
    heads: int
    num_edges: int
    dst: Tensor  # (E,) target of each edge (edges sorted by target)
    crow: Tensor  # (H·N + 1,) row offsets, rows = targets
    col: Tensor  # (H·E,) columns = sources, head-major
    by_source: Tensor  # (E,) permutation sorting the edges by (source, target)
    crow_t: Tensor  # transposed matrix: rows = sources
    col_t: Tensor  # (H·E,) columns = targets

    def matrix(self, values: Tensor) -> Tensor:
        return _csr(self.crow, self.col, values, self.heads * self.num_nodes)

    def matrix_t(self, values: Tensor) -> Tensor:
        """The transpose of ``matrix(values)``; values in the (target-major) edge order."""
        values_t = values.view(self.heads, self.num_edges).index_select(1, self.by_source).view(-1)
        return _csr(self.crow_t, self.col_t, values_t, self.heads * self.num_nodes)

    def per_row(self, node_values: Tensor) -> Tensor:
        """(H·N,) per-row values -> (H·E,) one per edge of that row."""
        return node_values.view(self.heads, self.num_nodes).index_select(1, self.dst).view(-1)


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: int) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, (size, size), check_invariants=False)


def _offsets(rows: Tensor, num_nodes: int, heads: int) -> Tensor:
    """Row offsets of the block-diagonal matrix for edges sorted by ``rows``."""
    counts = torch.bincount(rows, minlength=num_nodes)
    crow = torch.zeros(heads * num_nodes + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(counts.repeat(heads), 0, out=crow[1:])
    return crow


def _block_columns(cols: Tensor, num_nodes: int, heads: int) -> Tensor:
    shift = torch.arange(heads, device=cols.device).mul_(num_nodes)
    return (cols.unsqueeze(0) + shift.unsqueeze(1)).view(-1)


def _build_csr(src: Tensor, dst: Tensor, num_nodes: int, heads: int, by_source: Tensor | None = None) -> _Csr:
    num_edges = src.numel()
    if by_source is None:
        by_source = torch.argsort(src, stable=True)  # stable: targets stay sorted within a source
    # MKL's sparse kernels take 32-bit indices: int64 ones would be converted on every call
    index = torch.int32 if heads * max(num_nodes, num_edges) < 2**31 - 1 else torch.int64
    return _Csr(
        num_nodes=num_nodes, heads=heads, num_edges=num_edges, dst=dst,
        crow=_offsets(dst, num_nodes, heads).to(index), col=_block_columns(src, num_nodes, heads).to(index),
        by_source=by_source,
        crow_t=_offsets(src, num_nodes, heads).to(index),
        col_t=_block_columns(dst.index_select(0, by_source), num_nodes, heads).to(index),
    )


def _masked_csr(full: _Csr, src: Tensor, dst: Tensor, keep: Tensor) -> _Csr:
    """The structure of the kept edges, derived from the full one without sorting again."""
    new_index = torch.cumsum(keep, 0) - 1
    order = full.by_source[keep.index_select(0, full.by_source)]  # kept edges, in source order
    return _build_csr(src[keep], dst[keep], full.num_nodes, full.heads, by_source=new_index[order])


def _fast_edge_attention(q, k, v, edge_index, node_mask, scale, dropout_p, edge_bias, cache):
    num_nodes, heads, _ = q.shape
    src, dst = edge_index

    def build() -> _Csr:
        with torch.no_grad():
            return _build_csr(src, dst, num_nodes, heads)

    key = ("edges-csr", heads, num_nodes, q.device)
    full = cache(key, build) if cache is not None else build()
    structure = full
    if node_mask is not None:  # masked nodes neither send nor receive
        with torch.no_grad():
            keep = node_mask[src] & node_mask[dst]
            structure = _masked_csr(full, src, dst, keep)
        edge_index = edge_index[:, keep]
        if edge_bias is not None:
            edge_bias = edge_bias[keep]
    if structure.num_edges == 0:  # nothing to attend to: zeros, still attached to the graph
        return _generic_edge_attention(q, k, v, edge_index, None, Scoring(scale), dropout_p, edge_bias)
    drop = None
    if dropout_p > 0:
        drop = dropout_scale(structure.num_edges, heads, dropout_p, q.device, q.dtype).t().reshape(-1)
    if edge_bias is None:
        edge_bias = q.new_zeros(0)  # autograd.Function arguments must be tensors
    out, weights = _EdgeDotAttention.apply(q, k, v, edge_bias, structure, scale, drop)
    return out, weights.view(heads, -1).t(), edge_index


def _head_major(t: Tensor) -> Tensor:
    """(N, H, D) -> contiguous (H·N, D)."""
    return t.transpose(0, 1).reshape(-1, t.size(-1))


def _node_major(t: Tensor, heads: int) -> Tensor:
    """(H·N, D) -> (N, H, D) view."""
    return t.view(heads, -1, t.size(-1)).transpose(0, 1)


def _sddmm(matrix: Tensor, a: Tensor, b: Tensor, beta: float = 0.0, alpha: float = 1.0) -> None:
    """In place on the CSR ``matrix``'s values: m_ij <- beta · m_ij + alpha · a_i·b_j at its nonzeros.

    ``out=`` the input itself: the out-of-place op would copy the values and both index arrays.
    """
    torch.sparse.sampled_addmm(matrix, a, b.t(), beta=beta, alpha=alpha, out=matrix)


def _spmm(matrix: Tensor, dense: Tensor, alpha: float = 1.0) -> Tensor:
    """alpha · (CSR @ dense). On CPU into an uninitialised ``out`` with beta=0 (MKL overwrites it):
    ``@`` would first fill a zero matrix and copy it into the result."""
    if matrix.device.type != "cpu":
        return torch.sparse.mm(matrix, dense).mul_(alpha) if alpha != 1.0 else torch.sparse.mm(matrix, dense)
    out = dense.new_empty(matrix.size(0), dense.size(1))
    return torch.addmm(out, matrix, dense, beta=0.0, alpha=alpha, out=out)


def _segment_softmax(scores: Tensor, structure: _Csr) -> Tensor:
    """Softmax of each row's entries; (H·E,) values in CSR order."""
    row_max = torch.segment_reduce(scores, "max", offsets=structure.crow)
    weights = (scores - structure.per_row(row_max)).exp_()
    row_sum = torch.segment_reduce(weights, "sum", offsets=structure.crow)
    return weights.div_(structure.per_row(row_sum))


class _EdgeDotAttention(torch.autograd.Function):
    """softmax_j(scale · q_i·k_j + bias_ij) @ v over the edges, O(E·H) saved, no E × D tensors."""

    @staticmethod
    def forward(ctx, q, k, v, edge_bias, structure: _Csr, scale: float, drop: Tensor | None):
        heads = structure.heads
        qh, kh, vh = _head_major(q), _head_major(k), _head_major(v)
        has_bias = edge_bias.numel() > 0
        # sampled_addmm: beta · input + alpha · (q kᵀ) at input's sparsity; the bias rides in as the input
        scores = qh.new_empty(heads * structure.num_edges) if has_bias else qh.new_zeros(heads * structure.num_edges)
        if has_bias:  # a copy: the scores are written in place
            scores.view(heads, -1).copy_(edge_bias.t())
        _sddmm(structure.matrix(scores), qh, kh, beta=1.0, alpha=scale)  # scores += scale · q_i·k_j
        weights = _segment_softmax(scores, structure)
        dropped = weights * drop if drop is not None else weights
        out = _spmm(structure.matrix(dropped), vh)
        ctx.save_for_backward(qh, kh, vh, weights, drop)
        ctx.structure, ctx.scale, ctx.has_bias = structure, scale, has_bias
        ctx.set_materialize_grads(False)
        return _node_major(out, heads), weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out, grad_weights):
        qh, kh, vh, weights, drop = ctx.saved_tensors
        structure, scale = ctx.structure, ctx.scale
        heads = structure.heads
        if grad_out is None:  # only the returned weights were used
            grad_out = qh.new_zeros(structure.num_nodes, heads, vh.size(-1))
        go = _head_major(grad_out)
        dropped = weights * drop if drop is not None else weights
        grad_w = torch.zeros_like(weights)
        _sddmm(structure.matrix(grad_w), go, vh)  # dL/d(dropped weights)
        if drop is not None:
            grad_w = grad_w.mul_(drop)
        if grad_weights is not None:  # the returned (pre-dropout) weights were used too
            grad_w = grad_w.add_(grad_weights)
        row_dot = torch.segment_reduce(weights * grad_w, "sum", offsets=structure.crow)
        grad_s = grad_w.sub_(structure.per_row(row_dot)).mul_(weights)  # dL/dscores, (H·E,)
        grad_q = grad_k = grad_v = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_q = _node_major(_spmm(structure.matrix(grad_s), kh, alpha=scale), heads)
        if ctx.needs_input_grad[1]:
            grad_k = _node_major(_spmm(structure.matrix_t(grad_s), qh, alpha=scale), heads)
        if ctx.needs_input_grad[2]:
            grad_v = _node_major(_spmm(structure.matrix_t(dropped), go), heads)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_bias = grad_s.view(heads, -1).t()
        return grad_q, grad_k, grad_v, grad_bias, None, None, None
