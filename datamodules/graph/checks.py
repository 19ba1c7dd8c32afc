"""Graph checks: one ValueError naming the source and the offending key unless a graph is consistent."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from core.errors import DataError

STAGE_MASKS = ("train_mask", "val_mask", "test_mask")


def check_graph(data: Data, where: str) -> Data:
    """Raise one ValueError naming ``where`` and the offending key unless ``data`` is a consistent graph.

    Expected: ``x`` float (N, F); ``y`` integer (N,) with labels >= 0 (-1: unlabelled, in no mask);
    ``edge_index`` integer (2, E) with ids in [0, N); optional ``edge_attr`` (E, D); optional masks bool (N,).
    """
    x, y, edge_index = getattr(data, "x", None), getattr(data, "y", None), getattr(data, "edge_index", None)
    for key, value in (("x", x), ("y", y), ("edge_index", edge_index)):
        if not isinstance(value, Tensor):
            raise ValueError(f"{where}: missing `{key}`; expected a tensor (x: (N, F) features, y: (N,) labels, "
                             f"edge_index: (2, E) source/target ids)")
    if x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"{where}: `x` must be a float tensor of shape (num_nodes, num_features), "
                         f"got {x.dtype} {tuple(x.shape)}")
    num_nodes = x.size(0)
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"{where}: `y` must be an integer tensor of shape (num_nodes,), got {y.dtype} "
                         f"{tuple(y.shape)}")
    if y.size(0) != num_nodes:
        raise ValueError(f"{where}: features/labels size mismatch: `x` has {num_nodes} rows (nodes) but `y` has "
                         f"{y.size(0)} labels; expected one label per node")
    if y.numel() and int(y.min()) < -1:
        raise ValueError(f"{where}: `y` holds label {int(y.min())}; expected class ids >= 0 (-1: unlabelled)")
    if y.numel() and int(y.max()) < 0:
        raise ValueError(f"{where}: `y` labels no node (all -1); expected class ids >= 0 on some nodes")
    used = y[y >= 0].unique()
    if used.numel() and int(used.max()) + 1 - used.numel() > used.numel():  # e.g. 999 marking unlabelled nodes
        top = int(used.max())
        raise DataError(f"{where}: `y` uses {used.numel()} class ids but the largest is {top} (held by "
                        f"{int((y == top).sum())} nodes), which would build a {top + 1}-class model",
                        expected="class ids 0..C-1", fix="Mark unlabelled nodes with y = -1, not a sentinel id.")
    bad = ~torch.isfinite(x) if x.is_floating_point() else None
    if bad is not None and bool(bad.any()):
        node, column = (int(i) for i in bad.nonzero()[0])
        raise DataError(f"{where}: `x` holds {int(bad.sum())} NaN/Inf feature value(s), the first at node {node}, "
                        f"feature column {column}", expected="finite features",
                        fix="Fill or drop those values in the data (training would stop at step 0 with NaN).")
    if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_index.is_floating_point():
        raise ValueError(f"{where}: `edge_index` must be an integer tensor of shape (2, num_edges) holding "
                         f"(source, target) rows, got {edge_index.dtype} {tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"{where}: `edge_index` out of range: it holds node ids in [{int(edge_index.min())}, "
                         f"{int(edge_index.max())}], expected ids in [0, {num_nodes - 1}] for the {num_nodes} "
                         f"nodes of `x`")
    edge_attr = getattr(data, "edge_attr", None)
    if edge_attr is not None and (edge_attr.dim() not in (1, 2) or edge_attr.size(0) != edge_index.size(1)):
        raise ValueError(f"{where}: `edge_attr` must have one row per edge ({edge_index.size(1)}), "
                         f"got shape {tuple(edge_attr.shape)}")
    for key in STAGE_MASKS:
        mask = getattr(data, key, None)
        if mask is not None and (mask.dtype != torch.bool or tuple(mask.shape) != (num_nodes,)):
            raise ValueError(f"{where}: `{key}` must be a bool tensor of shape ({num_nodes},), got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        if mask is not None and bool((y[mask] < 0).any()):
            raise ValueError(f"{where}: `{key}` selects {int((y[mask] < 0).sum())} unlabelled node(s) (y = -1); "
                             f"masks may select labelled nodes only")
    return data
