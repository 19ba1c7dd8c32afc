"""Edge-masked attention in O(E) memory: node i attends only to its in-neighbours j -> i.

Gather q of each edge's target and k, v of its source, score each edge, softmax over the
edges that enter the same node (torch_geometric.utils.softmax), and sum the weighted values
back onto the targets. No N×N tensor exists; a node without incoming edges gets zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
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
) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v (N, H, D); edge_index (2, E) deduplicated. Returns output (N, H, D), weights (E', H), edges kept."""
    num_nodes = q.size(0)
    if node_mask is not None:  # masked nodes neither send nor receive
        keep = node_mask[edge_index[0]] & node_mask[edge_index[1]]
        edge_index = edge_index[:, keep]
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
    weights = edge_softmax(scores, dst, num_nodes=num_nodes)  # (E, H)
    dropped = F.dropout(weights, dropout_p) if dropout_p > 0 else weights
    messages = dropped.unsqueeze(-1) * v.index_select(0, src)  # (E, H, D)
    out = torch.zeros_like(q).index_add_(0, dst, messages)
    return out, weights, edge_index
