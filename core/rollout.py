"""Attention rollout (Abnar & Zuidema 2020): how much of each output token comes from each input token.

One layer mixes tokens by its attention A (heads fused) and keeps the rest through the residual connection,
so it is modelled as Â = r·I + (1 - r)·A with rows renormalised to sum to 1; the whole encoder is the product
Â_L ··· Â_1. Row i of the result: the share of every input token in token i's final vector (for a ViT, row 0
of the class token or the mean of the patch rows gives a relevance map over the patches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor


def attention_rollout(weights: Sequence[Tensor], residual: float = 0.5,
                      head_fusion: Literal["mean", "max", "min"] = "mean") -> Tensor:
    """Per-layer attention weights (B, heads, L, L), first layer first -> (B, L, L) rollout.

    ``residual``: the weight r of the identity (the skip connection), 0.5 in the paper. ``head_fusion``: how the
    heads of a layer are combined before rolling out ("mean" in the paper; "max"/"min" are common variants).
    """
    if not weights:
        raise ValueError("attention_rollout needs the weights of at least one layer")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"attention_rollout: residual must be in [0, 1], got {residual}")
    fuse = {"mean": lambda w: w.mean(1), "max": lambda w: w.amax(1), "min": lambda w: w.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"attention_rollout: head_fusion must be mean, max or min, got {head_fusion!r}")
    first = weights[0]
    if first.dim() != 4 or first.size(-1) != first.size(-2):
        raise ValueError(f"attention_rollout expects (batch, heads, L, L) weights, got {tuple(first.shape)}")
    eye = torch.eye(first.size(-1), dtype=torch.float32, device=first.device)
    rollout = eye.expand(first.size(0), -1, -1)
    for layer, w in enumerate(weights):
        if w.shape[0] != first.shape[0] or w.shape[-2:] != first.shape[-2:]:
            raise ValueError(f"attention_rollout: layer {layer} has weights {tuple(w.shape)}, layer 0 "
                             f"{tuple(first.shape)}")
        mixed = residual * eye + (1.0 - residual) * fuse[head_fusion](w.float())
        mixed = mixed / mixed.sum(-1, keepdim=True).clamp(min=1e-12)
        rollout = mixed @ rollout
    return rollout
