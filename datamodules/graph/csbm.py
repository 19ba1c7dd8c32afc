"""A contextual stochastic block model (``source: csbm``): a graph generated here, with controlled homophily."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected


@dataclass
class CSBM:
    """Contextual stochastic block model: balanced classes, Gaussian features, homophily-controlled edges.

    Class ``c`` has a random mean direction of norm ``feature_signal`` in ``num_features`` dims; a node's
    features are its class mean plus N(0, I). Each node draws about ``avg_degree`` / 2 edges (made
    undirected); a fraction ``homophily`` of them go to its own class, the rest to other classes.
    ``edge_features`` > 0 adds an ``edge_attr`` of that many columns: a noisy "same class" indicator
    (column 0, flipped with probability ``edge_feature_noise``) and standard-normal noise columns.

    Args:
        num_nodes: nodes of the graph
        num_classes: balanced classes (>= 2)
        num_features: feature columns per node
        avg_degree: mean edges per node (undirected)
        homophily: share of a node's edges that go to its own class (0 .. 1)
        feature_signal: norm of each class's mean feature direction (noise is N(0, I))
        edge_features: edge_attr columns (0: none): a noisy same-class indicator plus noise columns
        edge_feature_noise: probability that the same-class indicator is flipped
        seed: seed of the generated graph
    """

    num_nodes: int = 1000
    num_classes: int = 3
    num_features: int = 32
    avg_degree: float = 8.0
    homophily: float = 0.8
    feature_signal: float = 1.0
    edge_features: int = 0
    edge_feature_noise: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.num_nodes < 2 * self.num_classes:
            raise ValueError(f"csbm: need num_classes >= 2 and num_nodes >= 2 * num_classes, got "
                             f"num_nodes={self.num_nodes}, num_classes={self.num_classes}")
        if not 0.0 <= self.homophily <= 1.0:
            raise ValueError(f"csbm: homophily must be in [0, 1], got {self.homophily}")
        if self.avg_degree <= 0 or self.num_features < 1:
            raise ValueError(f"csbm: need avg_degree > 0 and num_features >= 1, got {self.avg_degree}, "
                             f"{self.num_features}")

    def generate(self) -> Data:
        g = torch.Generator().manual_seed(self.seed)
        n, c = self.num_nodes, self.num_classes
        y = torch.arange(n) % c
        y = y[torch.randperm(n, generator=g)]
        means = torch.randn(c, self.num_features, generator=g)
        means = means / means.norm(dim=1, keepdim=True) * self.feature_signal
        x = means[y] + torch.randn(n, self.num_features, generator=g)
        # Members of each class, to draw partners from: members[c][k] is the k-th node of class c.
        order = torch.argsort(y, stable=True)
        counts = torch.bincount(y, minlength=c)
        starts = torch.cumsum(counts, 0) - counts
        m = max(1, int(round(n * self.avg_degree / 2)))
        src = torch.randint(n, (m,), generator=g)
        same = torch.rand(m, generator=g) < self.homophily
        shift = torch.randint(1, c, (m,), generator=g)  # another class, uniformly
        cls = torch.where(same, y[src], (y[src] + shift) % c)
        pick = (torch.rand(m, generator=g) * counts[cls]).long().clamp(max=counts[cls] - 1)
        dst = order[starts[cls] + pick]
        keep = src != dst
        edge_index = torch.stack([src[keep], dst[keep]])
        data = Data(x=x, y=y)
        if self.edge_features > 0:
            intra = (y[edge_index[0]] == y[edge_index[1]]).float()
            flip = torch.rand(intra.size(0), generator=g) < self.edge_feature_noise
            attr = torch.randn(intra.size(0), self.edge_features, generator=g)
            attr[:, 0] = torch.where(flip, 1.0 - intra, intra)
            data.edge_index, data.edge_attr = to_undirected(edge_index, attr, num_nodes=n, reduce="mean")
        else:
            data.edge_index = to_undirected(edge_index, num_nodes=n)
        return data
