"""Performer (Choromanski et al. 2021): FAVOR+ positive orthogonal random features for the softmax kernel.

exp(q·k / √d) = E_ω[φ(q)·φ(k)] with φ(x) = exp(ω·x' - |x'|²/2) / √M, x' = x / d^(1/4), ω ~ N(0, I):
every feature is positive (no cancelling signs, unlike sin/cos features), and orthogonal rows of ω
lower the variance. The estimate then goes through linear attention (``kernel_attention``), so time and
memory are O(L·M·d). The features are a buffer: fixed between calls (the module's exact formula is
linear attention with *these* features), redrawn by ``redraw()`` or every ``redraw_interval`` training calls.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .linear_attention import kernel_attention


def orthogonal_gaussian(num_features: int, dim: int, generator: torch.Generator | None = None) -> Tensor:
    """(M, d) rows: blocks of d orthogonal directions, each row scaled to the norm of a Gaussian d-vector."""
    blocks = []
    for _ in range(-(-num_features // dim)):
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
        blocks.append(q.T)
    directions = torch.cat(blocks)[:num_features]
    norms = torch.randn(num_features, dim, generator=generator).norm(dim=1, keepdim=True)
    return directions * norms


def positive_features(x: Tensor, projection: Tensor, stabilize: str | None = None) -> Tensor:
    """φ(x) for x (B, H, L, d) and ω (M, d) -> (B, H, L, M).

    ``stabilize``: subtract the max exponent before exp — "query": per row (cancels in out_i's ratio),
    "key": over all keys of a (batch, head) (cancels as one common factor); None: the plain formula.
    """
    x = x * x.size(-1) ** -0.25
    exponent = x @ projection.T.to(x.dtype) - (x * x).sum(-1, keepdim=True) / 2
    if stabilize == "query":
        exponent = exponent - exponent.amax(-1, keepdim=True).detach()
    elif stabilize == "key":
        exponent = exponent - exponent.amax((-2, -1), keepdim=True).detach()
    return torch.exp(exponent) / math.sqrt(projection.size(0))


class PerformerAttention(nn.Module):
    """FAVOR+ attention on (B, H, L, d) q, k, v; ``num_features`` M random features shared by the heads."""

    def __init__(self, head_dim: int, num_features: int = 64, redraw_interval: int = 0, seed: int | None = None,
                 chunk: int = 64) -> None:
        super().__init__()
        if num_features < 1 or redraw_interval < 0:
            raise ValueError(f"PerformerAttention needs num_features >= 1 and redraw_interval >= 0, "
                             f"got {num_features}, {redraw_interval}")
        self.head_dim, self.num_features = head_dim, num_features
        self.redraw_interval, self.chunk = redraw_interval, chunk
        self.seed, self.draws, self.calls = seed, 0, 0
        self.register_buffer("projection", orthogonal_gaussian(num_features, head_dim, self._generator()))

    def _generator(self) -> torch.Generator | None:
        """Draw n uses seed + n (reproducible), or the global RNG without a seed."""
        return None if self.seed is None else torch.Generator().manual_seed(self.seed + self.draws)

    @torch.no_grad()
    def redraw(self) -> None:
        """Draw new random features (Performer redraws them during training to avoid overfitting one draw)."""
        self.draws += 1
        fresh = orthogonal_gaussian(self.num_features, self.head_dim, self._generator())
        self.projection.copy_(fresh.to(self.projection))

    def forward(self, q: Tensor, k: Tensor, v: Tensor, padding_mask: Tensor | None = None,
                causal: bool = False) -> Tensor:
        if self.training and self.redraw_interval:
            if self.calls and self.calls % self.redraw_interval == 0:
                self.redraw()
            self.calls += 1
        phi_q = positive_features(q, self.projection, "query")
        phi_k = positive_features(k, self.projection, "key")  # one factor common to all terms: cancels, causal too
        return kernel_attention(phi_q, phi_k, v, padding_mask, causal, self.chunk)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, num_features={self.num_features}, redraw_interval={self.redraw_interval}"
