"""The attention module, positional encodings and the encoder: textbook formulas and PyTorch equivalence."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from core import (
    AdditiveScore,
    AttentionConfig,
    Causal,
    EdgeMask,
    Encoder,
    EncoderConfig,
    Full,
    LearnedPositions,
    MultiHeadSelfAttention,
    RelativePositionBias,
    Rotary,
    Truncated,
    attend,
    sinusoidal_2d,
    sinusoidal_positions,
)


def textbook(q, k, v, allowed, score):
    """b^i = Σ_j softmax_j(α(i, j)) v^j, written with Python loops over one head."""
    length = q.size(0)
    out = torch.zeros_like(v)
    for i in range(length):
        js = [j for j in range(length) if allowed(i, j)]
        if not js:
            continue
        alphas = torch.stack([score(i, j) for j in js])
        weights = torch.exp(alphas - alphas.max()) / torch.exp(alphas - alphas.max()).sum()
        out[i] = sum(w * v[j] for w, j in zip(weights, js))
    return out


@pytest.mark.parametrize("kind", ["dot", "additive", "relative"])
def test_dense_reference_is_the_textbook_formula(kind):
    torch.manual_seed(0)
    length, dim = 9, 6
    q, k, v = torch.randn(3, length, dim).unbind(0)
    additive = AdditiveScore(1, dim, "leaky_relu") if kind == "additive" else None
    relative = RelativePositionBias(dim, max_distance=2) if kind == "relative" else None
    if relative is not None:
        nn.init.normal_(relative.table)
    scale = 1 / math.sqrt(dim)

    def score(i, j):
        if kind == "additive":
            return (additive.vector[0] * torch.nn.functional.leaky_relu(q[i] + k[j], 0.2)).sum()
        s = scale * q[i] @ k[j]
        if kind == "relative":
            s = s + scale * q[i] @ relative.table[max(-2, min(2, j - i)) + 2]
        return s

    pattern = Truncated(2, 3)
    expected = textbook(q, k, v, lambda i, j: -2 <= j - i <= 3, score)
    with torch.no_grad():
        got = attend(q[None, None], k[None, None], v[None, None], pattern, backend="dense",
                     additive=additive, relative=relative)[0, 0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("padded", [False, True])
def test_full_attention_equals_torch_multihead_attention(padded):
    torch.manual_seed(0)
    dim, heads, batch, length = 32, 4, 3, 11
    ours = MultiHeadSelfAttention(dim, AttentionConfig(num_heads=heads))
    theirs = nn.MultiheadAttention(dim, heads, batch_first=True)
    with torch.no_grad():
        ours.qkv.weight.copy_(theirs.in_proj_weight)
        ours.qkv.bias.copy_(theirs.in_proj_bias)
        ours.proj.weight.copy_(theirs.out_proj.weight)
        ours.proj.bias.copy_(theirs.out_proj.bias)
    x = torch.randn(batch, length, dim)
    mask = torch.arange(length)[None] < torch.tensor([11, 7, 1])[:, None] if padded else None
    ref, ref_w = theirs(x, x, x, key_padding_mask=None if mask is None else ~mask, average_attn_weights=False)
    for backend in ["dense", "sdpa"]:
        out = ours(x, Full(), mask, backend=backend)
        real = mask if mask is not None else torch.ones(batch, length, dtype=torch.bool)
        torch.testing.assert_close(out[real], ref[real], rtol=1e-5, atol=1e-6)
    _, w = ours(x, Full(), mask, return_weights=True)
    torch.testing.assert_close(w.permute(0, 2, 1, 3)[real], ref_w.permute(0, 2, 1, 3)[real], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shared_qkv", [False, True])
@pytest.mark.parametrize("out_proj", [False, True])
def test_other_input_width_shared_projection_and_concatenated_heads(shared_qkv, out_proj):
    """in_dim != dim, one projection as q = k = v, heads concatenated without W^o: the formula written out."""
    torch.manual_seed(0)
    in_dim, dim, heads, batch, length = 10, 8, 2, 2, 5
    attn = MultiHeadSelfAttention(dim, AttentionConfig(num_heads=heads), in_dim=in_dim, out_proj=out_proj,
                                  shared_qkv=shared_qkv)
    assert attn.qkv.weight.shape == ((dim if shared_qkv else 3 * dim), in_dim)
    x = torch.randn(batch, length, in_dim)
    projected = attn.qkv(x)
    q, k, v = (projected,) * 3 if shared_qkv else projected.chunk(3, dim=-1)
    split = lambda t: t.view(batch, length, heads, dim // heads).transpose(1, 2)  # noqa: E731
    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(dim // heads), dim=-1)
    expected = (weights @ split(v)).transpose(1, 2).reshape(batch, length, dim)
    if out_proj:
        expected = attn.proj(expected)
    for backend in ["dense", "sdpa"]:
        torch.testing.assert_close(attn(x, Full(), backend=backend), expected, rtol=1e-5, atol=1e-6)
    nodes = torch.randn(6, in_dim)
    assert attn(nodes, EdgeMask(torch.tensor([[0, 1, 2], [1, 2, 3]]))).shape == (6, dim)
    with pytest.raises(ValueError, match=f"dim={in_dim}"):
        attn(torch.randn(batch, length, dim))


def test_module_runs_every_pattern_and_score():
    torch.manual_seed(0)
    x = torch.randn(2, 40, 16)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 30:] = False
    for score in ["dot", "additive"]:
        for position in ["none", "rotary", "relative"]:
            attn = MultiHeadSelfAttention(16, AttentionConfig(num_heads=2, score=score, position=position))
            for pattern in [Full(), Causal(), Truncated(4, 4)]:
                y = attn(x, pattern, mask)
                assert y.shape == x.shape and torch.isfinite(y).all()
                assert torch.equal(y[1, 30:], attn.proj(torch.zeros(10, 16)))  # padded rows: zero attention
    nodes = torch.randn(7, 16)
    attn = MultiHeadSelfAttention(16, AttentionConfig(num_heads=4, score="additive"))
    y, w = attn(nodes, EdgeMask(torch.tensor([[0, 1], [1, 2]])), return_weights=True)
    assert y.shape == (7, 16) and w.shape == (9, 4)  # 2 edges + 7 self loops


def test_truncated_output_ignores_tokens_outside_the_window():
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(8, AttentionConfig(num_heads=2)).eval()
    x = torch.randn(1, 300, 8)
    y = attn(x, Truncated(3, 2))
    x2 = x.clone()
    x2[0, 200] += 10.0
    y2 = attn(x2, Truncated(3, 2))
    changed = (y - y2).abs().amax(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == list(range(198, 204))  # i with i-3 <= 200 <= i+2


@pytest.mark.parametrize("call,message", [
    (lambda a: a(torch.randn(4, 16)), r"\(batch, length, dim\)"),
    (lambda a: a(torch.randn(2, 5, 15)), "dim=16"),
    (lambda a: a(torch.randn(2, 5, 16), padding_mask=torch.ones(2, 6, dtype=torch.bool)), r"\(2, 5\)"),
    (lambda a: a(torch.randn(2, 5, 16), padding_mask=torch.ones(2, 5)), "bool"),
    (lambda a: a(torch.randn(5, 16), EdgeMask(torch.tensor([[0], [5]]))), r"expected ids in \[0, 4\]"),
    (lambda a: a(torch.randn(5, 16), EdgeMask(torch.tensor([[-1], [2]]))), r"expected ids in \[0, 4\]"),
    (lambda a: a(torch.randn(2, 5, 16), EdgeMask(torch.tensor([[0], [1]]))), r"\(nodes, dim\)"),
    (lambda a: a(torch.randn(2, 5, 16), backend="edges"), "EdgeMask"),
    (lambda a: a(torch.randn(2, 5, 16), backend="banded"), "Truncated"),
    (lambda a: a(torch.randn(2, 5, 16), backend="nope"), "backend must be one of"),
    (lambda a: a(torch.randn(2, 5, 16), Truncated(2, 2), return_weights=True, backend="banded"), "return_weights"),
])
def test_bad_input_gives_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(MultiHeadSelfAttention(16, AttentionConfig(num_heads=4)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiHeadSelfAttention(30, AttentionConfig(num_heads=4))
    with pytest.raises(ValueError, match="score must be"):
        AttentionConfig(num_heads=4, score="cosine")
    with pytest.raises(ValueError, match="left >= 0"):
        Truncated(-1, 3)
    with pytest.raises(ValueError, match=r"\(2, E\)"):
        EdgeMask(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, heads, length, head_dim\)"):
        attend(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="sdpa"):
        attend(*torch.randn(3, 1, 1, 4, 2), additive=AdditiveScore(1, 2), backend="sdpa")


def test_sdpa_additive_is_refused_but_auto_falls_back():
    attn = MultiHeadSelfAttention(8, AttentionConfig(num_heads=2, score="additive"))
    assert attn(torch.randn(1, 4, 8)).shape == (1, 4, 8)
    with pytest.raises(ValueError, match="scaled dot product only"):
        attn(torch.randn(1, 4, 8), backend="sdpa")


# ---- positional encodings -----------------------------------------------------------------------


def test_sinusoidal_table_matches_the_paper():
    table = sinusoidal_positions(50, 8)
    pos, i = 13, 2
    assert table.shape == (50, 8)
    assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 8)), rel_tol=1e-5)
    assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 8)), rel_tol=1e-5)


def test_sinusoidal_2d_encodes_row_and_column():
    grid = sinusoidal_2d(3, 4, 16).view(3, 4, 16)
    assert torch.equal(grid[1, 0, :8], grid[1, 3, :8])  # same row, same first half
    assert torch.equal(grid[0, 2, 8:], grid[2, 2, 8:])  # same column, same second half
    assert not torch.equal(grid[0, 0], grid[0, 1])


def test_learned_positions_refuse_too_long_inputs():
    lp = LearnedPositions(10, 4)
    assert lp(7).shape == (7, 4)
    with pytest.raises(ValueError, match="max_len=10"):
        lp(11)


def test_rotary_scores_depend_only_on_relative_distance():
    torch.manual_seed(0)
    rotary = Rotary(8)
    q, k = torch.randn(8), torch.randn(8)
    length = 20
    qs = rotary(q.expand(length, 8).clone())
    ks = rotary(k.expand(length, 8).clone())
    scores = qs @ ks.T
    for d in (-3, 0, 5):
        diag = torch.diagonal(scores, offset=d)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(qs.norm(dim=-1), q.norm().expand(length))  # rotation keeps length


# ---- encoder ------------------------------------------------------------------------------------


def test_encoder_returns_every_layers_weights_and_passes_the_pattern():
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(dim=16, depth=3, num_heads=2, drop_path=0.2)).eval()
    x = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    y, weights = enc(x, Truncated(1, 1), mask, return_weights=True)
    assert y.shape == x.shape and len(weights) == 3
    for w in weights:
        assert w.shape == (2, 2, 12, 12)
        assert torch.equal(w[0, 0].triu(2), torch.zeros(12, 12))  # nothing outside the band
        torch.testing.assert_close(w[1, :, :8].sum(-1), torch.ones(2, 8))
        assert torch.equal(w[1, :, :, 8:], torch.zeros(2, 12, 4))  # padding gets no weight
    torch.testing.assert_close(enc(x, Truncated(1, 1), mask), y)


def test_encoder_on_graph_nodes_and_stochastic_depth_in_training():
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(dim=8, depth=2, num_heads=2, drop_path=0.5, score="additive"))
    assert [b.drop_path.p for b in enc.blocks] == [0.0, 0.5]
    h = torch.randn(6, 8, requires_grad=True)
    out = enc(h, EdgeMask(torch.tensor([[0, 1, 2], [1, 2, 3]])))
    out.sum().backward()
    assert out.shape == (6, 8) and torch.isfinite(h.grad).all()
