"""Linear attention ("Transformers are RNNs", Katharopoulos et al. 2020): softmax's exp(q·k) replaced by φ(q)·φ(k).

    out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j) = φ(q_i) S / φ(q_i)·z,   S = Σ_j φ(k_j) v_jᵀ,  z = Σ_j φ(k_j)

Associativity turns O(L²) into O(L·D²): S (D × Dv) and z (D) are summed once. Causal attention sums
only j ≤ i, i.e. S and z are an RNN's state: ``linear_attention_step`` processes one position with O(1)
state; ``kernel_attention(causal=True)`` is the same computation in parallel, chunk by chunk (exact
masked sums inside a chunk, prefix sums of S and z between chunks), so memory stays O(L·D + L·D²/C).
φ = elu + 1 here; Performer (``core.performer``) reuses ``kernel_attention`` with random features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-6  # the denominator is clamped at EPS: a query with no (real) key outputs zeros


def elu_feature_map(x: Tensor) -> Tensor:
    """φ(x) = elu(x) + 1 > 0: positive, so every weight φ(q)·φ(k) is positive like exp."""
    return F.elu(x) + 1.0


def kernel_attention(phi_q: Tensor, phi_k: Tensor, v: Tensor, padding_mask: Tensor | None = None,
                     causal: bool = False, chunk: int = 64) -> Tensor:
    """Σ_j (φq_i·φk_j) v_j / Σ_j φq_i·φk_j over all j (or j <= i) for feature maps already applied.

    phi_q, phi_k (B, H, L, M); v (B, H, L, D); padding_mask (B, L), True = real: padded keys add nothing and
    padded queries output zeros.
    """
    if padding_mask is not None:
        real = padding_mask[:, None, :, None].to(phi_k.dtype)
        phi_k, phi_q = phi_k * real, phi_q * real
    if not causal:
        state = phi_k.transpose(-1, -2) @ v  # (B,H,M,D)
        z = phi_k.sum(-2)  # (B,H,M)
        num = phi_q @ state
        den = (phi_q * z[:, :, None, :]).sum(-1, keepdim=True)
        return num / den.clamp_min(EPS)
    length = phi_q.size(2)
    nc = -(-length // chunk)
    padded = nc * chunk

    def chunks(t: Tensor) -> Tensor:  # (B,H,L,X) -> (B,H,nc,C,X)
        return F.pad(t, (0, 0, 0, padded - length)).unflatten(2, (nc, chunk))

    qc, kc, vc = chunks(phi_q), chunks(phi_k), chunks(v)
    kv = kc.transpose(-1, -2) @ vc  # (B,H,nc,M,D): each chunk's contribution to S
    prev_state = torch.cumsum(kv, dim=2) - kv  # S of the chunks before (exclusive prefix sum)
    zk = kc.sum(-2)  # (B,H,nc,M)
    prev_z = torch.cumsum(zk, dim=2) - zk
    inner = (qc @ kc.transpose(-1, -2)).tril()  # (B,H,nc,C,C): j <= i inside the chunk
    num = inner @ vc + qc @ prev_state
    den = inner.sum(-1, keepdim=True) + (qc * prev_z[..., None, :]).sum(-1, keepdim=True)
    out = num / den.clamp_min(EPS)
    return out.flatten(2, 3)[:, :, :length]


def linear_attention(q: Tensor, k: Tensor, v: Tensor, padding_mask: Tensor | None = None,
                     causal: bool = False, chunk: int = 64) -> Tensor:
    """Linear attention with φ = elu + 1 on (B, H, L, D) inputs (parallel form, O(L))."""
    return kernel_attention(elu_feature_map(q), elu_feature_map(k), v, padding_mask, causal, chunk)


@dataclass
class RecurrentState:
    """What causal linear attention remembers of the past: S = Σ φ(k_j) v_jᵀ and z = Σ φ(k_j), O(1) in L."""

    state: Tensor  # (B, H, M, D)
    z: Tensor  # (B, H, M)


def linear_attention_step(q_t: Tensor, k_t: Tensor, v_t: Tensor,
                          memory: RecurrentState | None = None) -> tuple[Tensor, RecurrentState]:
    """One step of causal linear attention as an RNN: q_t, k_t, v_t (B, H, D) -> output (B, H, D), new state."""
    phi_q, phi_k = elu_feature_map(q_t), elu_feature_map(k_t)
    if memory is None:
        memory = RecurrentState(phi_k.new_zeros(*phi_k.shape, v_t.size(-1)), phi_k.new_zeros(phi_k.shape))
    state = memory.state + phi_k[..., :, None] * v_t[..., None, :]
    z = memory.z + phi_k
    num = (phi_q[..., None, :] @ state).squeeze(-2)
    den = (phi_q * z).sum(-1, keepdim=True)
    return num / den.clamp_min(EPS), RecurrentState(state, z)


class LinearAttention(nn.Module):
    """The module form ``MultiHeadSelfAttention(kernel="linear")`` uses (no parameters)."""

    def __init__(self, chunk: int = 64) -> None:
        super().__init__()
        self.chunk = chunk

    def forward(self, q: Tensor, k: Tensor, v: Tensor, padding_mask: Tensor | None = None,
                causal: bool = False) -> Tensor:
        return linear_attention(q, k, v, padding_mask, causal, self.chunk)
