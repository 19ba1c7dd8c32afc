"""The efficient attention family: sparse patterns equal dense with their mask; kernel methods equal their own
exact (quadratic) formulas; every one is selectable through MultiHeadSelfAttention / Encoder."""

from __future__ import annotations

import math

import pytest
import torch
from test_core_backends import LargestTensor, make_qkv, padding, rel_err

from core import (
    AttentionConfig,
    BigBird,
    Causal,
    EdgeMask,
    Encoder,
    EncoderConfig,
    Full,
    Global,
    KernelConfig,
    LinformerAttention,
    Longformer,
    MultiHeadSelfAttention,
    PerformerAttention,
    Strided,
    Truncated,
    attend,
    choose_backend,
    linear_attention,
    linear_attention_step,
    positive_features,
)
from core.linear_attention import elu_feature_map, kernel_attention
from core.scores import Scoring

TOL = 1e-5

SPARSE_PATTERNS = [
    Strided(1), Strided(5), Strided(64),
    Global(1), Global([0, 7, 30]),
    Longformer(4), Longformer(3, stride=7, global_tokens=[2, 10]), Longformer(0, stride=9, global_tokens=0),
    Longformer(300, global_tokens=2),
    BigBird(3, global_tokens=1, random_blocks=2, seed=0, block_size=8), BigBird(5, 2, 3, seed=1, block_size=16),
    BigBird(0, 0, 1, seed=2, block_size=32),
]


def grads_of(q, k, v, **kwargs):
    for t in (q, k, v):
        t.grad = None
    out = attend(q, k, v, **kwargs)
    g = torch.Generator().manual_seed(7)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return out.detach(), [t.grad.clone() for t in (q, k, v)]


@pytest.mark.parametrize("pattern", SPARSE_PATTERNS, ids=repr)
@pytest.mark.parametrize("length", [1, 17, 203])
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_sparse_backend_equals_dense_with_the_pattern_mask(pattern, length, padded):
    q, k, v = make_qkv(3, 2, length, 8, seed=length)
    mask = padding(3, length, seed=1) if padded else None
    ref_out, ref_grads = grads_of(q, k, v, pattern=pattern, padding_mask=mask, backend="dense")
    out, grads = grads_of(q, k, v, pattern=pattern, padding_mask=mask, backend="sparse")
    assert torch.isfinite(out).all()
    assert rel_err(out, ref_out) <= TOL
    for name, g, ref in zip("qkv", grads, ref_grads, strict=True):
        assert rel_err(g, ref) <= TOL, f"grad {name}: {rel_err(g, ref):.2e}"
    if mask is not None:  # padded queries output exact zeros
        assert (out.transpose(1, 2)[~mask] == 0).all()


@pytest.mark.parametrize("pattern", [Strided(6), Longformer(5, 11, [0, 40]), BigBird(4, 1, 2, seed=3, block_size=16)],
                         ids=repr)
def test_flex_block_masks_equal_dense_on_cpu(pattern):
    """The CUDA path's mask_mod, run eagerly on CPU (forward only; the compiled kernel is untested here)."""
    q, k, v = (t.detach() for t in make_qkv(2, 2, 150, 8))
    mask = padding(2, 150)
    ref = attend(q, k, v, pattern, mask, backend="dense")
    assert rel_err(attend(q, k, v, pattern, mask, backend="flex"), ref) <= TOL


def test_sparse_dropout_is_the_same_mask_semantics_as_dense():
    """With dropout the expectation over draws equals the output without dropout (weights scaled 1/(1-p))."""
    q, k, v = (t.detach() for t in make_qkv(1, 1, 40, 4))
    pattern = Longformer(3, 5, 1)
    ref = attend(q, k, v, pattern, backend="dense")
    torch.manual_seed(0)
    mean = torch.stack([attend(q, k, v, pattern, backend="sparse", dropout_p=0.3) for _ in range(600)]).mean(0)
    assert rel_err(mean, ref) < 0.08
    assert rel_err(attend(q, k, v, pattern, backend="sparse", dropout_p=0.3), ref) > 0.05


def test_sparse_pattern_masks_are_the_unions_they_claim():
    L = 50
    window = Truncated(4, 4).mask(L)
    stride = Strided(7).mask(L)
    i, j = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    assert torch.equal(stride, (j - i) % 7 == 0)
    assert torch.equal(Strided(1).mask(L), Full().mask(L))
    g = Global([3, 9]).mask(L)
    assert g[3].all() and g[:, 9].all() and g.sum() == 4 * L - 4
    assert torch.equal(Longformer(4, 7, [3, 9]).mask(L), window | stride | g)
    assert torch.equal(Longformer(4, None, 0).mask(L), window)
    bb = BigBird(4, [3, 9], random_blocks=2, seed=5, block_size=8)
    extra = bb.mask(L) & ~(window | g)
    assert extra.any()
    table = bb.sparse_parts(L).random_table()  # random keys come in whole blocks of 8: the draw's table
    assert torch.equal(bb.mask(L), window | g | table[i // 8, j // 8])
    assert (table.sum(1) == 2).all()
    assert torch.equal(bb.mask(L), BigBird(4, [3, 9], 2, seed=5, block_size=8).mask(L))  # a seed fixes the draw
    assert not torch.equal(bb.mask(L), BigBird(4, [3, 9], 2, seed=6, block_size=8).mask(L))
    assert Longformer(4, 7, 1).keys_per_query(4096) == 1 + 9 + 586
    with pytest.raises(ValueError, match="stride >= 1"):
        Strided(0)
    with pytest.raises(ValueError, match="global_tokens must be >= 0"):
        Longformer(4, None, -1)


def test_auto_routes_sparse_patterns_to_the_block_sparse_backend():
    plain = Scoring(scale=0.1)
    for pattern in (Strided(8), Global(2), Longformer(8, 16, 1), BigBird(8, 1, 2)):
        assert choose_backend(pattern, 1000, plain, cuda=False, dropout_p=0.0, return_weights=False) == "sparse"
        assert choose_backend(pattern, 1000, plain, cuda=True, dropout_p=0.0, return_weights=False) == "flex"
        assert choose_backend(pattern, 1000, plain, cuda=True, dropout_p=0.1, return_weights=False) == "sparse"
        assert choose_backend(pattern, 1000, plain, cuda=False, dropout_p=0.0, return_weights=True) == "dense"
        assert choose_backend(pattern, 64, plain, cuda=False, dropout_p=0.0, return_weights=False) == "sdpa"
    with pytest.raises(ValueError, match="backend 'sparse' computes"):
        attend(*make_qkv(1, 1, 8, 4), pattern=Truncated(1, 1), backend="sparse")


def test_sparse_never_builds_an_L_by_L_tensor():
    length = 4096
    q, k, v = make_qkv(1, 2, length, 8)
    for pattern in (Longformer(16, 128, 2), BigBird(16, 2, 2, block_size=32)):
        with LargestTensor() as probe:
            out = attend(q, k, v, pattern, backend="auto")
            out.sum().backward()
        assert probe.largest < length * length / 8, f"{pattern}: largest tensor has {probe.largest} elements"


def test_multihead_attention_takes_sparse_patterns_in_an_encoder():
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(dim=16, depth=2, num_heads=2)).eval()
    x, mask = torch.randn(2, 150, 16), padding(2, 150)
    pattern = BigBird(6, 1, 2, block_size=16)
    ref = enc(x, pattern=pattern, padding_mask=mask)
    for block in enc.blocks:
        block.attn.backend = "dense"
    assert rel_err(ref, enc(x, pattern=pattern, padding_mask=mask)) <= TOL


# ---------------------------------------------------------------------------------- kernel methods


def quadratic_kernel_attention(phi_q, phi_k, v, mask=None, causal=False):
    """The exact formula written out: weights φ(q_i)·φ(k_j) over allowed j, normalised per row."""
    w = phi_q @ phi_k.transpose(-1, -2)  # (B,H,L,L)
    L = w.size(-1)
    allowed = torch.ones(L, L, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    allowed = allowed[None, None]
    if mask is not None:
        allowed = allowed & mask[:, None, None, :] & mask[:, None, :, None]
    w = w * allowed
    return (w @ v) / w.sum(-1, keepdim=True).clamp_min(1e-6)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("length,chunk", [(1, 64), (37, 8), (130, 64), (64, 64)])
def test_linear_attention_equals_its_quadratic_formula(causal, length, chunk):
    q, k, v = make_qkv(3, 2, length, 8, seed=length)
    mask = padding(3, length)
    out = linear_attention(q, k, v, mask, causal=causal, chunk=chunk)
    ref = quadratic_kernel_attention(elu_feature_map(q), elu_feature_map(k), v, mask, causal)
    assert rel_err(out, ref) <= TOL
    g = torch.randn(out.shape)
    grads = torch.autograd.grad((out * g).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * g).sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):  # (L = 1: dq, dk are exactly 0, up to rounding)
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_linear_attention_rnn_steps_equal_the_parallel_causal_form():
    q, k, v = (t.detach() for t in make_qkv(2, 3, 70, 8))
    parallel = linear_attention(q, k, v, causal=True, chunk=16)
    memory, outs = None, []
    for t in range(q.size(2)):
        out, memory = linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], memory)
        outs.append(out)
    assert memory.state.shape == (2, 3, 8, 8) and memory.z.shape == (2, 3, 8)  # O(1) in the length
    assert rel_err(torch.stack(outs, dim=2), parallel) <= TOL
    assert rel_err(parallel, linear_attention(q, k, v, causal=False)) > 0.05  # causality matters


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_performer_equals_its_exact_formula_with_its_features(causal):
    torch.manual_seed(0)
    perf = PerformerAttention(head_dim=8, num_features=24, seed=3)
    q, k, v = make_qkv(2, 2, 45, 8, seed=4)
    mask = padding(2, 45)
    out = perf(q, k, v, mask, causal=causal)
    # the plain formula, without the max-subtracting stabilisers
    ref = quadratic_kernel_attention(positive_features(q, perf.projection), positive_features(k, perf.projection),
                                     v, mask, causal)
    assert rel_err(out, ref) <= 1e-4
    assert (out.transpose(1, 2)[~mask] == 0).all()


def test_performer_features_estimate_the_softmax_kernel_and_are_orthogonal():
    torch.manual_seed(0)
    from core import orthogonal_gaussian

    w = orthogonal_gaussian(16, 16)
    gram = (w / w.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).T
    assert torch.allclose(gram, torch.eye(16), atol=1e-5)
    q, k = torch.randn(1, 1, 5, 16) * 0.3, torch.randn(1, 1, 5, 16) * 0.3  # variance ~ exp(|q+k|²) / M
    proj = orthogonal_gaussian(40000, 16, torch.Generator().manual_seed(1))
    estimate = positive_features(q, proj) @ positive_features(k, proj).transpose(-1, -2)
    exact = torch.exp(q @ k.transpose(-1, -2) / 4.0)
    assert rel_err(estimate, exact) < 0.03
    few = orthogonal_gaussian(4, 16, torch.Generator().manual_seed(1))
    assert rel_err(positive_features(q, few) @ positive_features(k, few).transpose(-1, -2), exact) > 0.03


def test_performer_redraws_its_features():
    perf = PerformerAttention(8, 16, redraw_interval=2, seed=0)
    first = perf.projection.clone()
    assert torch.equal(first, PerformerAttention(8, 16, seed=0).projection)  # seeded: reproducible
    q = torch.randn(1, 1, 5, 8)
    perf.eval()
    perf(q, q, q)
    perf(q, q, q)
    perf(q, q, q)
    assert torch.equal(perf.projection, first)  # never in eval
    perf.train()
    perf(q, q, q)
    perf(q, q, q)
    assert torch.equal(perf.projection, first)
    perf(q, q, q)  # third training call: redrawn
    assert not torch.equal(perf.projection, first)
    second = perf.projection.clone()
    perf.redraw()
    assert not torch.equal(perf.projection, second)
    assert "projection" in perf.state_dict()


def test_linformer_is_its_low_rank_formula_and_trains_its_projections():
    torch.manual_seed(0)
    lin = LinformerAttention(max_length=64, k=6)
    q, k, v = make_qkv(2, 2, 40, 8)
    out = lin(q, k, v)
    e, f = lin.E[:, :40], lin.F[:, :40]
    scores = q @ (e @ k).transpose(-1, -2) / math.sqrt(8)
    assert rel_err(out, torch.softmax(scores, -1) @ (f @ v)) <= TOL
    out.sum().backward()
    assert lin.E.grad is not None and lin.E.grad[:, :40].abs().sum() > 0 and lin.E.grad[:, 40:].abs().sum() == 0
    assert {n for n, _ in lin.named_parameters()} == {"E", "F"}


def test_linformer_with_identity_projections_is_exact_attention_and_ignores_padding():
    lin = LinformerAttention(max_length=30, k=30)
    with torch.no_grad():
        lin.E.copy_(torch.eye(30))
        lin.F.copy_(torch.eye(30))
    q, k, v = (t.detach() for t in make_qkv(1, 2, 30, 8))
    assert rel_err(lin(q, k, v), attend(q, k, v, Full(), backend="dense")) <= TOL
    # padding: the real rows of a padded sequence equal the unpadded shorter sequence
    lin = LinformerAttention(max_length=30, k=5)
    mask = torch.arange(30)[None] < 21
    padded = lin(q, k, v, mask)
    short = lin(q[:, :, :21], k[:, :, :21], v[:, :, :21])
    assert rel_err(padded[:, :, :21], short) <= TOL and (padded[:, :, 21:] == 0).all()
    with pytest.raises(ValueError, match="cannot be causal"):
        lin(q, k, v, causal=True)
    with pytest.raises(ValueError, match="exceeds max_length"):
        lin(*(torch.randn(1, 1, 31, 8) for _ in range(3)))


@pytest.mark.parametrize("kernel", ["linear", "performer", "linformer"])
def test_kernels_are_selected_by_a_keyword_and_train(kernel):
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(dim=16, depth=2, num_heads=2,
                                kernel=KernelConfig(kernel, num_features=8, max_length=64)))
    x, mask = torch.randn(3, 50, 16), padding(3, 50)
    out = enc(x, padding_mask=mask)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out[mask].sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    attn = enc.blocks[0].attn
    assert attn.kernel == kernel and f"kernel={kernel}" in repr(attn)
    if kernel == "linformer":
        assert attn.kernel_attention.E.grad.abs().sum() > 0
    # the attention block equals the kernel module applied to its own projections
    x1 = torch.randn(2, 20, 16)
    q, k, v = attn.qkv(x1).view(2, 20, 3, 2, 8).permute(2, 0, 3, 1, 4).unbind(0)
    expected = attn.proj(attn.kernel_attention(q, k, v).transpose(1, 2).reshape(2, 20, 16))
    assert rel_err(attn(x1), expected) <= TOL


def test_kernel_keyword_errors():
    with pytest.raises(ValueError, match="kernel must be one of"):
        KernelConfig("cosine")
    with pytest.raises(ValueError, match="needs score='dot'"):
        AttentionConfig(num_heads=2, kernel=KernelConfig("linear"), score="additive")
    attn = MultiHeadSelfAttention(16, AttentionConfig(num_heads=2, kernel=KernelConfig("performer")))
    with pytest.raises(ValueError, match="Full or Causal"):
        attn(torch.randn(1, 10, 16), pattern=Truncated(2, 2))
    with pytest.raises(ValueError, match="Full or Causal"):
        attn(torch.randn(1, 10, 16), return_weights=True)
    with pytest.raises(ValueError, match="Full or Causal"):
        attn(torch.randn(4, 16), pattern=EdgeMask(torch.tensor([[0, 1], [1, 2]])))
    causal = MultiHeadSelfAttention(16, AttentionConfig(num_heads=2, kernel=KernelConfig("linear")))
    x = torch.randn(1, 12, 16)
    full, prefix = causal(x, pattern=Causal()), causal(x[:, :7], pattern=Causal())
    assert rel_err(full[:, :7], prefix) <= TOL  # causal: the future does not leak


def test_kernel_attention_without_padding_equals_padding_all_real():
    phi_q, phi_k = torch.rand(2, 2, 9, 4), torch.rand(2, 2, 9, 4)
    v = torch.randn(2, 2, 9, 3)
    ones = torch.ones(2, 9, dtype=torch.bool)
    assert rel_err(kernel_attention(phi_q, phi_k, v), kernel_attention(phi_q, phi_k, v, ones)) <= TOL
