"""Edge-masked attention: edge features as a per-head score bias, the edges backend equal to dense."""

from __future__ import annotations

import pytest
import torch

from core import AttentionConfig, EdgeMask, Encoder, EncoderConfig, MultiHeadSelfAttention, attend
from tests.test_core_backends import TOL, graph_batch, outputs_and_grads, rel_err, score_modules


def edge_features(num_edges: int, dim: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(num_edges, dim, generator=torch.Generator().manual_seed(seed))


def node_qkv(num_nodes: int, heads: int, head_dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(num_nodes, heads, head_dim, generator=g, requires_grad=True) for _ in range(3)]


def as_sequence(*tensors):
    """(N, H, D) -> (1, H, N, D) leaves, the layout of the dense reference."""
    return [t.detach().permute(1, 0, 2).unsqueeze(0).requires_grad_() for t in tensors]


def from_sequence(out):
    return out[0].permute(1, 0, 2)


# ---- EdgeMask processing -----------------------------------------------------------------------


def test_processed_attr_merges_duplicates_by_mean_and_fills_self_loops_with_the_mean():
    edge_index = torch.tensor([[0, 0, 1, 1, 2], [2, 2, 2, 0, 2]])  # 0->2 twice, 2->2 an existing self loop
    attr = torch.tensor([[1.0], [3.0], [5.0], [7.0], [11.0]])
    pattern = EdgeMask(edge_index, edge_attr=attr)
    ei, ea = pattern.processed(4), pattern.processed_attr(4)
    assert ei.tolist() == [[0, 1, 1, 0, 1, 2, 3], [0, 0, 1, 2, 2, 2, 3]]
    # (1->0) 7; loop 0: mean of its in-edges = 7; loop 1: no in-edges -> 0; (0->2) mean(1, 3) = 2;
    # (1->2) 5; (2->2) keeps its own 11; loop 3: 0
    assert ea.squeeze(1).tolist() == [7.0, 7.0, 0.0, 2.0, 5.0, 11.0, 0.0]
    no_loops = EdgeMask(edge_index, add_self_loops=False, edge_attr=attr)
    assert no_loops.processed(4).tolist() == [[1, 0, 1, 2], [0, 2, 2, 2]]
    assert no_loops.processed_attr(4).squeeze(1).tolist() == [7.0, 2.0, 5.0, 11.0]
    assert EdgeMask(edge_index).processed_attr(4) is None


@pytest.mark.parametrize("self_loops", [True, False])
def test_processed_attr_matches_pyg_coalesce_and_add_remaining_self_loops(self_loops):
    from torch_geometric.utils import add_remaining_self_loops, coalesce

    edge_index, n = graph_batch()
    attr = edge_features(edge_index.size(1), dim=4)
    pattern = EdgeMask(edge_index, add_self_loops=self_loops, edge_attr=attr)
    ei, ea = coalesce(edge_index, attr, num_nodes=n, reduce="mean")
    if self_loops:
        ei, ea = add_remaining_self_loops(ei, ea, fill_value="mean", num_nodes=n)
    ei, ea = coalesce(ei.flip(0), ea, num_nodes=n)  # target-major order
    assert torch.equal(pattern.processed(n), ei.flip(0))
    assert torch.allclose(pattern.processed_attr(n), ea, atol=1e-6)


def test_processed_without_attr_is_unchanged_by_attr():
    edge_index, n = graph_batch()
    for loops in (True, False):
        plain = EdgeMask(edge_index, add_self_loops=loops).processed(n)
        with_attr = EdgeMask(edge_index, add_self_loops=loops, edge_attr=edge_features(edge_index.size(1))).processed(n)
        assert torch.equal(plain, with_attr)


def test_one_dimensional_edge_attr_reads_as_one_feature():
    pattern = EdgeMask(torch.tensor([[0, 1], [1, 0]]), edge_attr=torch.tensor([0.5, 2.0]))
    assert pattern.edge_dim == 1 and pattern.processed_attr(2).shape == (4, 1)


@pytest.mark.parametrize("attr,match", [
    (torch.zeros(3, 2), r"\(E, F\) with E = 2"),
    (torch.zeros(2, 2, 2), r"\(E, F\) with E = 2"),
    (torch.zeros(2, 2, dtype=torch.long), "float tensor"),
    ([[0.0], [1.0]], "float tensor"),
])
def test_bad_edge_attr_raises(attr, match):
    with pytest.raises(ValueError, match=match):
        EdgeMask(torch.tensor([[0, 1], [1, 0]]), edge_attr=attr)


# ---- edge bias: edges backend == dense -----------------------------------------------------------


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("score", ["dot", "additive", "relative"])
@pytest.mark.parametrize("masked", [False, True])
def test_edge_bias_edges_equal_dense(self_loops, score, masked):
    edge_index, n = graph_batch()
    pattern = EdgeMask(edge_index, add_self_loops=self_loops)
    heads, head_dim = 3, 4
    q, k, v = node_qkv(n, heads, head_dim)
    g = torch.Generator().manual_seed(5)
    bias = torch.randn(pattern.processed(n).size(1), heads, generator=g, requires_grad=True)
    node_mask = torch.rand(n, generator=g) > 0.3 if masked else None
    additive, relative = score_modules(score, heads, head_dim)
    params = [bias] + [p for m in (additive, relative) if m is not None for p in m.parameters()]
    kwargs = dict(pattern=pattern, additive=additive, relative=relative, edge_bias=bias)
    ref_out, ref_grads = outputs_and_grads(*as_sequence(q, k, v), params, layout=from_sequence, backend="dense",
                                           padding_mask=node_mask[None] if masked else None, **kwargs)
    out, grads = outputs_and_grads(q, k, v, params, backend="edges", padding_mask=node_mask, **kwargs)
    assert rel_err(out, ref_out) <= TOL
    for i, (gr, ref) in enumerate(zip(grads, ref_grads)):
        ref = from_sequence(ref) if i < 3 else ref
        assert rel_err(gr, ref) <= TOL, f"grad {i}: {rel_err(gr, ref):.2e}"


def test_edge_bias_changes_the_output():
    edge_index, n = graph_batch()
    pattern = EdgeMask(edge_index)
    q, k, v = node_qkv(n, 2, 4)
    bias = torch.randn(pattern.processed(n).size(1), 2)
    assert not torch.allclose(attend(q, k, v, pattern), attend(q, k, v, pattern, edge_bias=bias))
    assert torch.allclose(attend(q, k, v, pattern), attend(q, k, v, pattern, edge_bias=torch.zeros_like(bias)))


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("score", ["dot", "additive"])
def test_attention_module_edge_dim_edges_equal_dense(self_loops, score):
    edge_index, n = graph_batch()
    attr = edge_features(edge_index.size(1), dim=5)
    pattern = EdgeMask(edge_index, add_self_loops=self_loops, edge_attr=attr)
    torch.manual_seed(0)
    layer = MultiHeadSelfAttention(12, AttentionConfig(num_heads=3, score=score), edge_dim=5)
    x = torch.randn(n, 12)
    grad_out = torch.randn(n, 12)
    results = {}
    for backend in ("dense", "edges"):
        layer.zero_grad()
        out = layer(x, pattern, backend=backend)
        out.backward(grad_out)
        results[backend] = (out.detach(), {name: p.grad.clone() for name, p in layer.named_parameters()})
    (ref, ref_grads), (out, grads) = results["dense"], results["edges"]
    assert rel_err(out, ref) <= TOL
    assert grads["edge_bias.weight"].abs().sum() > 0
    # the grad of edge_bias.bias is zero in exact arithmetic (a per-head constant cancels in the softmax)
    assert grads["edge_bias.bias"].abs().max() <= 1e-5 and ref_grads["edge_bias.bias"].abs().max() <= 1e-5
    for name, g in grads.items():
        if name != "edge_bias.bias":
            assert rel_err(g, ref_grads[name]) <= TOL, f"{name}: {rel_err(g, ref_grads[name]):.2e}"


def test_attention_module_edge_dim_errors():
    layer = MultiHeadSelfAttention(8, AttentionConfig(num_heads=2), edge_dim=3)
    x = torch.randn(3, 8)
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"needs edge features.*\(E, 3\)"):
        layer(x, EdgeMask(edge_index))
    with pytest.raises(ValueError, match=r"expects edge_attr of shape \(E, 3\), got \(2, 4\)"):
        layer(x, EdgeMask(edge_index, edge_attr=torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="needs an EdgeMask"):
        layer(torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="edge_dim must be a positive int"):
        MultiHeadSelfAttention(8, AttentionConfig(num_heads=2), edge_dim=0)
    layer(x, EdgeMask(edge_index, edge_attr=torch.zeros(2, 3)))  # the right shape works


def test_attend_edge_bias_errors():
    edge_index = torch.tensor([[0, 1], [1, 2]])
    pattern = EdgeMask(edge_index)  # 2 edges + 3 self loops
    q = torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match=r"\(5, 2\).*got \(2, 2\)"):
        attend(q, q, q, pattern, edge_bias=torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"\(5, 2\).*got \(5,\)"):
        attend(q, q, q, pattern, edge_bias=torch.zeros(5))
    with pytest.raises(ValueError, match="needs backend 'edges'"):
        attend(q, q, q, pattern, backend="sdpa", edge_bias=torch.zeros(5, 2))
    seq = torch.randn(1, 2, 3, 4)
    with pytest.raises(ValueError, match="needs an EdgeMask"):
        attend(seq, seq, seq, edge_bias=torch.zeros(5, 2))


def test_encoder_passes_edge_dim_through():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    enc = Encoder(EncoderConfig(dim=16, depth=2, num_heads=4), edge_dim=2)
    assert all(block.attn.edge_bias is not None for block in enc.blocks)
    out = enc(torch.randn(4, 16), EdgeMask(edge_index, edge_attr=torch.randn(3, 2)))
    out.sum().backward()
    assert out.shape == (4, 16) and enc.blocks[0].attn.edge_bias.weight.grad is not None


# ---- the fast (CSR) path: dropout, weights, caching, corner cases ----------------------------------


def random_pattern(num_nodes=60, num_edges=500, seed=0, **kwargs):
    g = torch.Generator().manual_seed(seed)
    return EdgeMask(torch.randint(0, num_nodes, (2, num_edges), generator=g), **kwargs), num_nodes


def run_edges(q, k, v, pattern, fast, params=(), grad_seed=7, **kwargs):
    """Output and grads of the edges backend forced onto one path (fast: CSR Function, else generic)."""
    from core.backends.edges import edge_attention
    from core.scores import Scoring

    for t in (q, k, v, *params):
        t.grad = None
    n = q.size(0)
    out, weights, _ = edge_attention(q, k, v, pattern.processed(n), kwargs.pop("node_mask", None),
                                     Scoring(scale=q.size(-1) ** -0.5), fast=fast, cache=pattern.derived, **kwargs)
    g = torch.Generator().manual_seed(grad_seed)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return out.detach(), weights.detach(), [t.grad.clone() for t in (q, k, v, *params)]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_fast_path_equals_generic_path_with_dropout(masked, bias):
    pattern, n = random_pattern()
    q, k, v = node_qkv(n, 4, 8)
    g = torch.Generator().manual_seed(1)
    edge_bias = torch.randn(pattern.processed(n).size(1), 4, generator=g, requires_grad=True) if bias else None
    node_mask = torch.rand(n, generator=g) > 0.2 if masked else None
    params = [edge_bias] if bias else []
    results = []
    for fast in (True, False):
        torch.manual_seed(123)  # both paths draw the same (E, H) dropout mask
        results.append(run_edges(q, k, v, pattern, fast, params, dropout_p=0.4, edge_bias=edge_bias,
                                 node_mask=node_mask))
    (out, w, grads), (ref_out, ref_w, ref_grads) = results
    assert rel_err(out, ref_out) <= TOL and rel_err(w, ref_w) <= TOL
    for i, (gr, ref) in enumerate(zip(grads, ref_grads)):
        assert rel_err(gr, ref) <= TOL, f"grad {i}: {rel_err(gr, ref):.2e}"


def test_edges_dropout_drops_something():
    pattern, n = random_pattern()
    q, k, v = node_qkv(n, 2, 4)
    torch.manual_seed(0)
    out = attend(q, k, v, pattern, dropout_p=0.5)
    assert not torch.allclose(out, attend(q, k, v, pattern)) and torch.isfinite(out).all()


@pytest.mark.parametrize("masked", [False, True])
def test_fast_path_equals_dense_on_a_larger_graph_with_weights(masked):
    pattern, n = random_pattern(150, 3000, seed=3)
    heads, head_dim = 4, 8
    q, k, v = node_qkv(n, heads, head_dim, seed=3)
    src, dst = pattern.processed(n)
    bias = torch.randn(src.numel(), heads, generator=torch.Generator().manual_seed(4), requires_grad=True)
    node_mask = torch.rand(n, generator=torch.Generator().manual_seed(5)) > 0.25 if masked else None
    kwargs = dict(pattern=pattern, edge_bias=bias)
    (ref_out, ref_w), ref_grads = _with_weights(*as_sequence(q, k, v), [bias], layout=from_sequence, backend="dense",
                                                padding_mask=node_mask[None] if masked else None, **kwargs)
    (out, w), grads = _with_weights(q, k, v, [bias], backend="edges", padding_mask=node_mask, **kwargs)
    assert rel_err(out, ref_out) <= TOL
    assert w.shape == (src.numel(), heads)
    assert rel_err(w, ref_w[0].permute(1, 2, 0)[dst, src]) <= TOL  # dense weights at [target, source]
    for i, (gr, ref) in enumerate(zip(grads, ref_grads)):
        ref = from_sequence(ref) if i < 3 else ref
        assert rel_err(gr, ref) <= TOL, f"grad {i}: {rel_err(gr, ref):.2e}"


def _with_weights(q, k, v, params, layout=lambda out: out, **kwargs):
    for t in (q, k, v, *params):
        t.grad = None
    out, w = attend(q, k, v, return_weights=True, **kwargs)
    out = layout(out)
    g = torch.Generator().manual_seed(7)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return (out.detach(), w.detach()), [t.grad.clone() for t in (q, k, v, *params)]


def test_fast_path_caches_structures_per_heads_and_stays_correct():
    pattern, n = random_pattern()
    q2, k2, v2 = node_qkv(n, 2, 4)
    q3, k3, v3 = node_qkv(n, 3, 4)
    first = attend(q2, k2, v2, pattern)
    attend(q3, k3, v3, pattern)
    mask = torch.ones(n, dtype=torch.bool)
    mask[::3] = False
    attend(q2, k2, v2, pattern, mask)
    assert torch.equal(attend(q2, k2, v2, pattern), first)
    assert sum(key[0] == "edges-csr" for key in pattern._derived) == 2
    ref = attend(*as_sequence(q3, k3, v3), pattern, backend="dense")
    assert rel_err(attend(q3, k3, v3, pattern), from_sequence(ref)) <= TOL


def test_fast_path_grads_only_where_asked_and_under_no_grad():
    pattern, n = random_pattern()
    q, k, v = node_qkv(n, 2, 4)
    k.requires_grad_(False)
    out = attend(q, k, v, pattern)
    out.sum().backward()  # a stride-0 grad_out
    assert q.grad is not None and k.grad is None and v.grad is not None
    leaves = as_sequence(q, k, v)
    from_sequence(attend(*leaves, pattern, backend="dense")).sum().backward()
    assert rel_err(q.grad, from_sequence(leaves[0].grad)) <= TOL
    assert rel_err(v.grad, from_sequence(leaves[2].grad)) <= TOL
    with torch.no_grad():
        assert torch.allclose(attend(q, k, v, pattern), out, atol=1e-6)


def test_no_edges_at_all_gives_zeros_and_zero_grads():
    pattern = EdgeMask(torch.zeros(2, 0, dtype=torch.long), add_self_loops=False)
    q, k, v = node_qkv(4, 2, 3)
    out, w = attend(q, k, v, pattern, return_weights=True)
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out)) and w.shape == (0, 2)
    assert torch.equal(q.grad, torch.zeros_like(q)) and torch.equal(v.grad, torch.zeros_like(v))
    mask = torch.zeros(4, dtype=torch.bool)  # every node masked: no edge kept
    out = attend(q, k, v, EdgeMask(torch.tensor([[0, 1], [1, 2]])), mask)
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("use_out", [True, False])
def test_returned_edge_weights_are_differentiable_like_dense(use_out):
    pattern, n = random_pattern(40, 300, seed=6)
    q, k, v = node_qkv(n, 1, 4, seed=6)  # one head: the (E, 1) bias is a view-compatible corner case
    src, dst = pattern.processed(n)
    bias = torch.randn(src.numel(), 1, generator=torch.Generator().manual_seed(8), requires_grad=True)
    bias_before = bias.detach().clone()
    r = torch.randn(src.numel(), 1, generator=torch.Generator().manual_seed(9))
    g = torch.randn(n, 1, 4, generator=torch.Generator().manual_seed(10))

    def grads(q, k, v, backend, to_edges, layout):
        out, w = attend(q, k, v, pattern, backend=backend, edge_bias=bias, return_weights=True)
        loss = (to_edges(w) * r).sum() + ((layout(out) * g).sum() if use_out else 0)
        return torch.autograd.grad(loss, (q, k, v, bias), allow_unused=True)

    leaves = as_sequence(q, k, v)
    ref = grads(*leaves, "dense", lambda w: w[0].permute(1, 2, 0)[dst, src], from_sequence)
    fast = grads(q, k, v, "edges", lambda w: w, lambda out: out)
    assert torch.equal(bias.detach(), bias_before)  # the bias is never written in place
    for i, (a, b) in enumerate(zip(fast, ref)):
        b = torch.zeros_like(a) if b is None else (from_sequence(b) if i < 3 else b)
        a = torch.zeros_like(b) if a is None else a
        assert (a - b).norm() <= TOL * max(b.norm(), 1e-3), f"grad {i}"
