"""Score functions α(i, j) and the masked softmax every backend shares.

Each backend gathers (query, key) pairs its own way — all pairs, a band, or graph edges —
and then asks this module for the score of each pair, so a score is defined once:

* dot:      α(i, j) = scale · q_i · k_j
* additive: α(i, j) = a · act(q_i + k_j)      (Bahdanau with tanh, GATv2 with LeakyReLU)
* relative: adds scale · q_i · r_clip(j - i)  (Shaw et al. 2018; see ``RelativePositionBias``)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AdditiveScore(nn.Module):
    """Per-head additive score a · act(q_i + k_j); q and k are already W^q a, W^k a."""

    def __init__(self, num_heads: int, head_dim: int, activation: Literal["tanh", "leaky_relu"] = "tanh"):
        super().__init__()
        if activation not in ("tanh", "leaky_relu"):
            raise ValueError(f"additive activation must be 'tanh' or 'leaky_relu', got {activation!r}")
        self.activation = activation
        self.vector = nn.Parameter(torch.empty(num_heads, head_dim))
        nn.init.normal_(self.vector, std=1.0 / math.sqrt(head_dim))

    def act(self, x: Tensor) -> Tensor:
        return torch.tanh(x) if self.activation == "tanh" else F.leaky_relu(x, 0.2)

    def pairs(self, q: Tensor, k: Tensor, head_dim: int = -3) -> Tensor:
        """Score of broadcast pairs: q (..., D) + k (..., D) -> (...). Heads sit at ``head_dim`` of the result."""
        hidden = self.act(q + k)  # (..., D)
        shape = [1] * (hidden.dim() - 1)
        shape[head_dim] = -1
        return (hidden * self.vector.view(*shape, self.vector.size(-1))).sum(-1)

    def extra_repr(self) -> str:
        return f"heads={self.vector.size(0)}, head_dim={self.vector.size(1)}, activation={self.activation}"


@dataclass
class Scoring:
    """What a backend needs to turn (q_i, k_j) pairs into scores."""

    scale: float
    additive: AdditiveScore | None = None
    relative: RelativePositionBias | None = None  # noqa: F821 - defined in core.positional

    @property
    def plain_dot(self) -> bool:
        """Only the scaled dot product: fused kernels (SDPA, FlexAttention) can compute it."""
        return self.additive is None and self.relative is None


def masked_softmax(scores: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax over allowed entries; a row with nothing allowed becomes zeros, never NaN.

    Computed as exp(s - max) / sum with the masked entries zeroed, so both the value and the
    gradient of an empty row are exactly zero.
    """
    if mask is None or scores.size(dim) == 0:  # no keys at all (a length-0 sequence): an empty softmax
        return torch.softmax(scores, dim=dim) if mask is None else scores.new_zeros(scores.shape)
    scores = scores.masked_fill(~mask, float("-inf"))
    row_max = scores.amax(dim=dim, keepdim=True).detach()
    row_max = row_max.masked_fill(torch.isinf(row_max), 0.0)
    exp = torch.exp(scores - row_max)  # masked entries: exp(-inf) = 0
    return exp / exp.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(exp.dtype).tiny)
