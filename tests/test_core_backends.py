"""Every fast backend equals the dense reference formula, in outputs and in gradients."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core import (
    AdditiveScore,
    Causal,
    EdgeMask,
    Full,
    RelativePositionBias,
    Truncated,
    attend,
    choose_backend,
)
from core.scores import Scoring

TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a - b‖ / ‖b‖; where the reference is exactly zero (e.g. dq for a length-1 sequence), ‖a‖ itself."""
    ref = b.norm()
    return ((a - b).norm() / ref).item() if ref > 0 else a.norm().item()


def make_qkv(batch, heads, length, head_dim, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, head_dim, generator=g, requires_grad=True) for _ in range(3)]


def padding(batch, length, seed=0):
    """Random right padding, one sequence without padding, one with a single real token."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    if batch > 2:
        lengths[-1] = 1
    return torch.arange(length)[None, :] < lengths[:, None]


def score_modules(kind: str, heads: int, head_dim: int):
    torch.manual_seed(3)
    additive = AdditiveScore(heads, head_dim, "tanh") if kind in ("additive", "additive+relative") else None
    relative = RelativePositionBias(head_dim, max_distance=5) if kind.endswith("relative") else None
    if relative is not None:
        torch.nn.init.normal_(relative.table)
    return additive, relative


def outputs_and_grads(q, k, v, params, layout=lambda out: out, **kwargs):
    """attend's output (through ``layout``) and the gradients of a fixed random projection of it."""
    for t in (q, k, v, *params):
        t.grad = None
    out = layout(attend(q, k, v, **kwargs))
    g = torch.Generator().manual_seed(7)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return out.detach(), [t.grad.clone() for t in (q, k, v, *params)]


def assert_same_as_dense(q, k, v, backend, params=(), **kwargs):
    ref_out, ref_grads = outputs_and_grads(q, k, v, params, backend="dense", **kwargs)
    out, grads = outputs_and_grads(q, k, v, params, backend=backend, **kwargs)
    assert torch.isfinite(out).all()
    assert rel_err(out, ref_out) <= TOL, f"{backend}: output rel err {rel_err(out, ref_out):.2e}"
    for name, g, ref in zip(["q", "k", "v", "param", "param"], grads, ref_grads):
        assert rel_err(g, ref) <= TOL, f"{backend}: grad of {name} rel err {rel_err(g, ref):.2e}"


SEQUENCE_PATTERNS = [
    Full(), Causal(), Truncated(3, 3), Truncated(0, 5), Truncated(7, 1), Truncated(0, 0), Truncated(100, 100),
]


@pytest.mark.parametrize("pattern", SEQUENCE_PATTERNS, ids=repr)
@pytest.mark.parametrize("length", [1, 17, 64])
@pytest.mark.parametrize("padded", [False, True])
def test_sdpa_equals_dense(pattern, length, padded):
    q, k, v = make_qkv(3, 2, length, 8)
    mask = padding(3, length) if padded else None
    assert_same_as_dense(q, k, v, "sdpa", pattern=pattern, padding_mask=mask)


BANDED_PATTERNS = [Truncated(3, 3), Truncated(0, 5), Truncated(7, 1), Truncated(0, 0), Truncated(100, 100),
                   Truncated(40, 2), Causal()]


@pytest.mark.parametrize("pattern", BANDED_PATTERNS, ids=repr)
@pytest.mark.parametrize("length", [1, 17, 64, 203])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("score", ["dot", "additive", "relative", "additive+relative"])
def test_banded_equals_dense(pattern, length, padded, score):
    q, k, v = make_qkv(3, 2, length, 8, seed=length)
    additive, relative = score_modules(score, 2, 8)
    params = [m for m in (additive, relative) if m is not None]
    params = [p for m in params for p in m.parameters()]
    mask = padding(3, length, seed=1) if padded else None
    assert_same_as_dense(q, k, v, "banded", params, pattern=pattern, padding_mask=mask,
                         additive=additive, relative=relative)


@pytest.mark.parametrize("block", [1, 4, 16, 64])
def test_banded_block_size_does_not_change_result(block):
    from core.backends.banded import banded_attention

    q, k, v = make_qkv(2, 2, 50, 4)
    mask = padding(2, 50)
    ref = attend(q, k, v, Truncated(5, 9), mask, backend="dense")
    out = banded_attention(q, k, v, 5, 9, mask, Scoring(scale=0.5), block=block)
    assert rel_err(out, ref) <= TOL


def test_banded_without_autograd_chunks_and_matches(monkeypatch):
    from core.backends import band_layout

    monkeypatch.setattr(band_layout, "CHUNK_ELEMENTS", 512)  # force many chunks
    q, k, v = make_qkv(2, 2, 300, 4)
    mask = padding(2, 300)
    with torch.no_grad():
        out = attend(q, k, v, Truncated(9, 4), mask, backend="banded")
        ref = attend(q, k, v, Truncated(9, 4), mask, backend="dense")
    assert rel_err(out, ref) <= TOL


@pytest.mark.parametrize("block", [1, 3, 8, 16, 64])
@pytest.mark.parametrize("length", [1, 31, 97])
@pytest.mark.parametrize("score", ["dot", "relative"])
def test_banded_equals_dense_across_block_boundaries_and_odd_lengths(block, length, score):
    """The fused (dot) and one-tile (relative) kernels at block sizes that cut the band anywhere."""
    from core.backends.banded import banded_attention

    q, k, v = make_qkv(3, 2, length, 8, seed=block)
    _, relative = score_modules(score, 2, 8)
    params = list(relative.parameters()) if relative is not None else []
    mask = padding(3, length, seed=2)
    scoring = Scoring(scale=8**-0.5, relative=relative)
    ref_out, ref_grads = outputs_and_grads(q, k, v, params, pattern=Truncated(6, 2), padding_mask=mask,
                                           backend="dense", relative=relative)
    for t in (q, k, v, *params):
        t.grad = None
    out = banded_attention(q, k, v, 6, 2, mask, scoring, block=block)
    g = torch.Generator().manual_seed(7)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    assert rel_err(out.detach(), ref_out) <= TOL
    for t, ref in zip((q, k, v, *params), ref_grads):
        assert rel_err(t.grad, ref) <= TOL


def test_banded_equals_dense_with_relative_scores_across_block_boundaries():
    """Clipped distances (window wider than max_distance) on a sequence cut into many small blocks."""
    from core.backends.banded import banded_attention

    q, k, v = make_qkv(2, 3, 70, 4, seed=5)
    relative = RelativePositionBias(4, max_distance=3)
    torch.nn.init.normal_(relative.table)
    params = list(relative.parameters())
    ref_out, ref_grads = outputs_and_grads(q, k, v, params, pattern=Truncated(9, 5), backend="dense",
                                           relative=relative)
    for t in (q, k, v, *params):
        t.grad = None
    out = banded_attention(q, k, v, 9, 5, None, Scoring(scale=0.5, relative=relative), block=4)
    g = torch.Generator().manual_seed(7)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    assert rel_err(out.detach(), ref_out) <= TOL
    for t, ref in zip((q, k, v, *params), ref_grads):
        assert rel_err(t.grad, ref) <= TOL


@pytest.mark.parametrize("length,left,right,block", [(50, 5, 9, 4), (37, 0, 0, 16), (9, 20, 3, 2), (64, 16, 16, 16)])
def test_band_fold_is_the_adjoint_of_key_windows(length, left, right, block):
    """<windows(k), w> == <k, fold(w)>: the hand-written fold is exactly unfold's backward."""
    from core.backends.band_layout import BandLayout

    layout = BandLayout.of(length, left, right, block)
    k = torch.randn(3, length, 5, dtype=torch.float64)
    w = torch.randn(3, layout.num_blocks, layout.span, 5, dtype=torch.float64)
    lhs = (layout.key_windows(k) * w).sum()
    rhs = (k * layout.fold(w)).sum()
    assert torch.allclose(lhs, rhs)


@pytest.mark.parametrize("score", ["dot", "relative", "additive"])
def test_banded_without_autograd_chunks_and_matches_for_every_score(monkeypatch, score):
    from core.backends import band_layout

    monkeypatch.setattr(band_layout, "CHUNK_ELEMENTS", 512)  # force many chunks
    q, k, v = make_qkv(2, 2, 130, 4)
    additive, relative = score_modules(score, 2, 4)
    mask = padding(2, 130)
    with torch.no_grad():
        out = attend(q, k, v, Truncated(9, 4), mask, backend="banded", additive=additive, relative=relative)
        ref = attend(q, k, v, Truncated(9, 4), mask, backend="dense", additive=additive, relative=relative)
    assert rel_err(out, ref) <= TOL


@pytest.mark.parametrize("score", ["dot", "relative", "additive"])
def test_banded_fully_padded_rows_are_zero_in_value_and_gradient(score):
    q, k, v = make_qkv(2, 2, 40, 4)
    additive, relative = score_modules(score, 2, 4)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :21] = True  # sequence 0: 21 real frames (the last block half padded), sequence 1: none
    out = attend(q, k, v, Truncated(3, 0), mask, backend="banded", additive=additive, relative=relative)
    (out * torch.randn(out.shape)).sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert torch.equal(out[0, :, 21:], torch.zeros_like(out[0, :, 21:]))
    for t in (q, k, v):  # padded frames get no gradient, and pass none on
        assert torch.equal(t.grad[1], torch.zeros_like(t.grad[1]))
        assert torch.equal(t.grad[0, :, 21:], torch.zeros_like(t.grad[0, :, 21:]))


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_banded_never_builds_an_L_by_L_tensor():
    length, heads = 4096, 2
    q, k, v = make_qkv(1, heads, length, 8)
    with LargestTensor() as probe:
        out = attend(q, k, v, Truncated(16, 16), backend="banded")
        out.sum().backward()
    assert probe.largest < length * length / 8, f"largest tensor has {probe.largest} elements"
    # and the probe does see quadratic tensors where they exist
    with LargestTensor() as probe:
        attend(q.detach(), k.detach(), v.detach(), Truncated(16, 16), backend="sdpa")
    assert probe.largest >= length * length


# ---- graphs -------------------------------------------------------------------------------------


def random_graph(num_nodes, num_edges, seed=0, isolated=()):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    ei = torch.cat([ei, ei[:, :5]], dim=1)  # duplicates
    keep = ~(torch.isin(ei[0], torch.tensor(isolated)) | torch.isin(ei[1], torch.tensor(isolated)))
    return ei[:, keep]


def graph_batch():
    """Three graphs batched PyG-style: node ids offset, edges never cross graphs."""
    graphs = [random_graph(7, 12, seed=1, isolated=(3,)), random_graph(1, 0), random_graph(11, 30, seed=2)]
    offsets, parts, total = [], [], 0
    for ei, n in zip(graphs, [7, 1, 11]):
        parts.append(ei + total)
        offsets.append(total)
        total += n
    return torch.cat(parts, dim=1), total


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("score", ["dot", "additive", "relative"])
@pytest.mark.parametrize("masked", [False, True])
def test_edges_equal_dense(self_loops, score, masked):
    edge_index, num_nodes = graph_batch()
    pattern = EdgeMask(edge_index, add_self_loops=self_loops)
    heads, head_dim = 3, 4
    g = torch.Generator().manual_seed(0)
    q, k, v = [torch.randn(num_nodes, heads, head_dim, generator=g, requires_grad=True) for _ in range(3)]
    additive, relative = score_modules(score, heads, head_dim)
    params = [p for m in (additive, relative) if m is not None for p in m.parameters()]
    node_mask = torch.rand(num_nodes, generator=g) > 0.3 if masked else None
    # dense reference on the (1, H, N, D) layout with the adjacency as mask
    as_seq = [t.detach().permute(1, 0, 2).unsqueeze(0).requires_grad_() for t in (q, k, v)]
    seq_mask = node_mask[None] if masked else None
    ref_out, ref_grads = outputs_and_grads(*as_seq, params, layout=lambda out: out[0].permute(1, 0, 2),
                                           pattern=pattern, padding_mask=seq_mask, backend="dense",
                                           additive=additive, relative=relative)
    out, grads = outputs_and_grads(q, k, v, params, pattern=pattern, padding_mask=node_mask,
                                   backend="edges", additive=additive, relative=relative)
    assert rel_err(out, ref_out) <= TOL
    for i, (gr, ref) in enumerate(zip(grads, ref_grads)):
        ref = ref[0].permute(1, 0, 2) if i < 3 else ref
        assert rel_err(gr, ref) <= TOL


def test_edge_mask_semantics():
    # duplicate edges count once; isolated node without self loop outputs zeros; node 2 attends to 0 and 1
    edge_index = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 0]])
    assert EdgeMask(edge_index, add_self_loops=False).mask(4).nonzero().tolist() == [[0, 1], [2, 0], [2, 1]]
    assert torch.equal(EdgeMask(edge_index).processed(4), torch.tensor([[0, 1, 1, 0, 1, 2, 3], [0, 0, 1, 2, 2, 2, 3]]))
    q = torch.randn(4, 1, 2)
    out, weights = attend(q, q, q, EdgeMask(edge_index, add_self_loops=False), return_weights=True)
    assert torch.equal(out[3], torch.zeros(1, 2)) and torch.equal(out[1], torch.zeros(1, 2))
    assert weights.shape == (3, 1)
    assert torch.allclose(weights[1:].sum(), torch.tensor(1.0))  # node 2's two in-edges


def test_edge_weights_with_node_mask_align_with_processed_edges():
    edge_index, n = graph_batch()
    pattern = EdgeMask(edge_index)
    q = torch.randn(n, 2, 4)
    mask = torch.ones(n, dtype=torch.bool)
    mask[4] = False
    _, w = attend(q, q, q, pattern, mask, return_weights=True)
    src, dst = pattern.processed(n)
    assert w.shape == (src.numel(), 2)
    touches = (src == 4) | (dst == 4)
    assert torch.equal(w[touches], torch.zeros_like(w[touches]))
    per_node = torch.zeros(n, 2).index_add_(0, dst, w)
    assert torch.allclose(per_node[mask], torch.ones(int(mask.sum()), 2), atol=1e-6)


# ---- flex (forward only on CPU) -----------------------------------------------------------------


@pytest.mark.parametrize("pattern", [Full(), Causal(), Truncated(3, 9), Truncated(0, 0)], ids=repr)
@pytest.mark.parametrize("padded", [False, True])
def test_flex_equals_dense_forward(pattern, padded):
    q, k, v = make_qkv(3, 2, 37, 8)
    mask = padding(3, 37) if padded else None
    with torch.no_grad():
        out = attend(q, k, v, pattern, mask, backend="flex")
        ref = attend(q, k, v, pattern, mask, backend="dense")
    assert rel_err(out, ref) <= TOL


def test_flex_refuses_backward_on_cpu_with_a_clear_error():
    q, k, v = make_qkv(1, 1, 8, 4)
    with pytest.raises(ValueError, match="forward-only on CPU"):
        attend(q, k, v, Causal(), backend="flex")


# ---- empty rows, dispatch ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["dense", "sdpa", "banded"])
def test_rows_with_nothing_to_attend_are_zero_not_nan(backend):
    q, k, v = make_qkv(2, 2, 10, 4)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :3] = True  # sequence 0: 3 real tokens, sequence 1: none
    pattern = Truncated(1, 0)
    out = attend(q, k, v, pattern, mask, backend=backend)
    out.sum().backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert torch.equal(out[1], torch.zeros_like(out[1])) and torch.equal(out[0, :, 3:], torch.zeros_like(out[0, :, 3:]))


def test_auto_dispatch():
    dot = Scoring(scale=1.0)
    additive = Scoring(scale=1.0, additive=AdditiveScore(1, 2))
    kw = dict(cuda=False, dropout_p=0.0, return_weights=False)
    assert choose_backend(Truncated(64, 64), 4096, dot, **kw) == "banded"
    assert choose_backend(Truncated(64, 64), 4096, dot, **{**kw, "cuda": True}) == "flex"
    assert choose_backend(Truncated(64, 64), 4096, additive, **{**kw, "cuda": True}) == "banded"
    assert choose_backend(Truncated(4096, 4096), 4096, dot, **kw) == "sdpa"  # covers L: it is Full
    assert choose_backend(Full(), 4096, dot, **kw) == "sdpa"
    assert choose_backend(Full(), 4096, additive, **kw) == "dense"
    assert choose_backend(EdgeMask(torch.zeros(2, 0, dtype=torch.long)), 10, dot, **kw) == "edges"
    assert choose_backend(Truncated(2, 2), 4096, dot, **{**kw, "return_weights": True}) == "dense"


@pytest.mark.parametrize("pattern,backend", list(itertools.product([Truncated(2, 3)], ["banded", "sdpa", "dense"])))
def test_dropout_zeroes_weights_in_training(pattern, backend):
    torch.manual_seed(0)
    q, k, v = make_qkv(1, 1, 200, 4)
    out = attend(q, k, v, pattern, backend=backend, dropout_p=0.5)
    ref = attend(q, k, v, pattern, backend="dense")
    assert not torch.allclose(out, ref)  # something was dropped
    assert torch.isfinite(out).all()
