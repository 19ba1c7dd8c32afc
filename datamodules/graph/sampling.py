"""Neighbourhood sampling for mini-batches (``mode: neighbor``): PyG's NeighborLoader, with a plain-torch sampler
when neither pyg-lib nor torch-sparse is installed, and the bound on a batch's subgraph size.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput


class TorchNeighborSampler(NeighborSampler):
    """PyG's NeighborSampler with the homogeneous sampling step written in plain torch.

    PyG samples with pyg-lib or torch-sparse, compiled extensions without wheels for every torch; this
    fallback keeps NeighborLoader working without them. Same output layout: seed nodes first, then each
    hop's new nodes; ``row``/``col`` are local (source, target) ids of the sampled edges j -> i, where each
    node discovered at hop h draws up to ``num_neighbors[h]`` in-neighbours (all of them for -1), without
    replacement. ``directional`` subgraphs only, not disjoint.
    """

    def __init__(self, data: Data, num_neighbors: list[int]) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*without a 'pyg-lib' installation.*")
            super().__init__(data, num_neighbors=num_neighbors)

    def _sample(self, seed: Tensor, seed_time: Tensor | None = None, **kwargs) -> SamplerOutput:
        if isinstance(seed, dict) or seed_time is not None:
            raise ValueError("TorchNeighborSampler samples homogeneous graphs without time only")
        colptr, row = self.colptr, self.row
        nodes = seed.long().unique_consecutive() if seed.numel() < 2 else seed.long()
        frontier = torch.arange(nodes.numel())  # local ids of the nodes whose neighbours the next hop samples
        rows, cols, edges = [], [], []
        num_sampled_nodes, num_sampled_edges = [nodes.numel()], []
        for fanout in self.num_neighbors.get_mapped_values():
            targets = nodes[frontier]
            start, deg = colptr[targets], colptr[targets + 1] - colptr[targets]
            seg = torch.repeat_interleave(torch.arange(targets.numel()), deg)
            offsets = torch.cumsum(deg, 0) - deg
            pos = start[seg] + torch.arange(seg.numel()) - offsets[seg]  # CSC positions of all in-edges
            if fanout >= 0 and seg.numel():
                order = torch.argsort(seg.double() + torch.rand(seg.numel(), dtype=torch.float64))
                seg, pos = seg[order], pos[order]
                keep = torch.arange(seg.numel()) - offsets[seg] < fanout  # rank within its target
                seg, pos = seg[keep], pos[keep]
            neighbours = row[pos]
            local, nodes, new = _assign_local_ids(nodes, neighbours)
            rows.append(local)
            cols.append(frontier[seg])
            edges.append(pos)
            num_sampled_nodes.append(new.numel())
            num_sampled_edges.append(pos.numel())
            frontier = new
        empty = torch.empty(0, dtype=torch.long)
        return SamplerOutput(
            node=nodes, row=torch.cat(rows) if rows else empty, col=torch.cat(cols) if cols else empty,
            edge=torch.cat(edges) if edges else empty, batch=None,
            num_sampled_nodes=num_sampled_nodes, num_sampled_edges=num_sampled_edges,
        )


def _assign_local_ids(nodes: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Local ids of ``candidates`` in ``nodes`` extended by the candidates not yet in it (first-seen order).

    Returns (local ids of candidates, extended nodes, local ids of the new nodes). O((n + m) log(n + m)),
    no array of the graph's size.
    """
    both = torch.cat([nodes, candidates])
    uniq, inverse = torch.unique(both, return_inverse=True)
    first = torch.full((uniq.numel(),), both.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(both.numel()), reduce="amin")
    is_new = first >= nodes.numel()
    new_order = torch.argsort(first[is_new])
    new_uniq = is_new.nonzero().squeeze(1)[new_order]  # indices into uniq, in first-seen order
    local_of_uniq = torch.empty(uniq.numel(), dtype=torch.long)
    local_of_uniq[inverse[: nodes.numel()]] = torch.arange(nodes.numel())
    new_local = torch.arange(nodes.numel(), nodes.numel() + new_uniq.numel())
    local_of_uniq[new_uniq] = new_local
    return local_of_uniq[inverse[nodes.numel():]], torch.cat([nodes, uniq[new_uniq]]), new_local


def neighbor_loader(data: Data, num_neighbors: list[int], input_nodes: Tensor | None, batch_size: int,
                    shuffle: bool, num_workers: int = 0) -> NeighborLoader:
    """PyG NeighborLoader; samples with pyg-lib / torch-sparse when installed, else with TorchNeighborSampler."""
    import torch_geometric.typing as pyg_typing

    sampler = None
    if not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE):
        sampler = TorchNeighborSampler(data, num_neighbors)
    return NeighborLoader(data, num_neighbors=num_neighbors, input_nodes=input_nodes, batch_size=batch_size,
                          shuffle=shuffle, num_workers=num_workers, neighbor_sampler=sampler,
                          persistent_workers=num_workers > 0)


def subgraph_bound(batch_size: int, num_neighbors: list[int]) -> int:
    """Most nodes a NeighborLoader batch can hold: seeds times the product of fan-outs, summed over hops."""
    total, layer = batch_size, batch_size
    for k in num_neighbors:
        layer = layer * k if k > 0 else math.inf
        total += layer
    return total
