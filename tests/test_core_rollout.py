"""core.attention_rollout against the formula of Abnar & Zuidema (2020), written out element by element."""

from __future__ import annotations

import pytest
import torch

from core import Encoder, EncoderConfig, Full, attention_rollout


def rollout_by_hand(weights: list[torch.Tensor], residual: float) -> torch.Tensor:
    """R = Â_L ··· Â_1 with Â = normalise_rows(r·I + (1 - r)·mean_heads(A)), by explicit sums."""
    batch, heads, n, _ = weights[0].shape
    out = torch.zeros(batch, n, n, dtype=torch.float64)
    for b in range(batch):
        r = [[float(i == j) for j in range(n)] for i in range(n)]
        for w in weights:
            a = [[residual * (i == j) + (1 - residual) * sum(float(w[b, h, i, j]) for h in range(heads)) / heads
                  for j in range(n)] for i in range(n)]
            a = [[v / sum(row) for v in row] for row in a]
            r = [[sum(a[i][k] * r[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
        out[b] = torch.tensor(r, dtype=torch.float64)
    return out


@pytest.mark.parametrize("residual", [0.5, 0.0, 0.9])
def test_rollout_equals_the_formula(residual: float) -> None:
    torch.manual_seed(0)
    weights = [torch.randn(2, 3, 5, 5).softmax(-1) for _ in range(3)]
    got = attention_rollout(weights, residual=residual)
    torch.testing.assert_close(got.double(), rollout_by_hand(weights, residual), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 5))  # each output token: shares summing to 1


def test_rollout_of_a_trained_encoders_weights_and_edge_cases() -> None:
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(dim=16, depth=2, num_heads=4)).eval()
    _, weights = encoder(torch.randn(1, 7, 16), pattern=Full(), return_weights=True)
    rollout = attention_rollout(weights)
    assert rollout.shape == (1, 7, 7) and (rollout >= 0).all()
    identity = [torch.eye(4).expand(1, 2, 4, 4)]
    torch.testing.assert_close(attention_rollout(identity), torch.eye(4)[None])  # no mixing: every token itself
    uniform = [torch.full((1, 1, 4, 4), 0.25)]
    torch.testing.assert_close(attention_rollout(uniform, residual=0.0), torch.full((1, 4, 4), 0.25))
    torch.testing.assert_close(attention_rollout(weights, head_fusion="max").sum(-1), torch.ones(1, 7))
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(ValueError, match="batch, heads, L, L"):
        attention_rollout([torch.rand(3, 4, 4)])
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(weights, head_fusion="sum")
