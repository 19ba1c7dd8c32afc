"""A graph the user saved with ``torch.save``: a PyG ``Data`` object or a plain dict of tensors.

Why ``weights_only=True`` plus an allow-list: ``torch.load`` would otherwise unpickle arbitrary code from a file
someone handed you. A PyG ``Data`` pickles a few PyG classes besides tensors (``Data`` itself, the
``DataEdgeAttr`` / ``DataTensorAttr`` attribute records and the ``GlobalStorage`` that holds the attributes, in
PyG 2.8), so exactly those are allowed while loading (``torch.serialization.safe_globals``) and nothing else.

What is read: ``x`` (N, F), ``edge_index`` (2, E), ``y`` (N,) (-1 = unlabelled), optional ``edge_attr`` and
``train_mask`` / ``val_mask`` / ``test_mask``. ``num_nodes``, when present, must equal the rows of ``x``; every
other attribute (names, extra features, metadata) is ignored and listed once in the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torch_geometric.data import Data

from core.errors import DataError

from ..paths import DataNotFoundError, describe
from .checks import STAGE_MASKS

GRAPH_KEYS = ("x", "edge_index", "y", "edge_attr", *STAGE_MASKS)


def pyg_safe_globals() -> list[Any]:
    """The PyG classes a ``torch.save``d ``Data`` pickles (PyG 2.8); absent ones (other versions) are skipped."""
    import torch_geometric.data.data as pyg_data
    import torch_geometric.data.storage as pyg_storage

    names = [(pyg_data, "Data"), (pyg_data, "DataEdgeAttr"), (pyg_data, "DataTensorAttr"),
             (pyg_storage, "GlobalStorage"), (pyg_storage, "NodeStorage"), (pyg_storage, "EdgeStorage")]
    return [getattr(module, name) for module, name in names if hasattr(module, name)]


def _as_dict(obj: object, path: Path) -> dict[str, Any]:
    if isinstance(obj, Data):
        return {key: obj[key] for key in obj.keys()}
    if isinstance(obj, dict):
        return dict(obj)
    raise DataError(f"{path}: expected a dict with keys x, edge_index, y, or a torch_geometric Data, got "
                     f"{type(obj).__name__} (data.path)")


def load_file(path: Path) -> Data:
    """A graph saved with ``torch.save(Data(...), path)`` or ``torch.save({"x": ..., "edge_index": ..., "y": ...},
    path)``; see the module docstring for the keys read and ignored."""
    if not path.is_file():
        raise DataNotFoundError(f"data.path = {describe(path)} does not exist (source=file); expected a "
                                f"torch.save'd torch_geometric Data or dict with x (N, F), edge_index (2, E), y (N,) "
                                f"and optional train_mask/val_mask/test_mask. Set data.path to one you saved")
    try:
        with torch.serialization.safe_globals(pyg_safe_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[-1][:300] if str(err).strip() else ""
        raise DataError(f"{path}: cannot be read as a torch.save'd graph (data.path): {type(err).__name__}: "
                         f"{first}. Save a torch_geometric Data or a dict of tensors with torch.save") from err
    items = _as_dict(obj, path)
    for key in ("x", "edge_index", "y"):
        if not isinstance(items.get(key), Tensor):
            raise DataError(f"{path}: missing `{key}`; expected a tensor (x: (N, F) features, y: (N,) labels, "
                             f"edge_index: (2, E) source/target ids); the file holds {sorted(items)} (data.path)")
    num_nodes = items.pop("num_nodes", None)
    if num_nodes is not None and int(num_nodes) != items["x"].size(0):
        raise DataError(f"{path}: num_nodes = {int(num_nodes)} but `x` has {items['x'].size(0)} rows; expected "
                         f"one feature row per node")
    ignored = sorted(set(items) - set(GRAPH_KEYS))
    if ignored:
        rank_zero_info(f"{path}: ignoring attributes {ignored} (read: {', '.join(GRAPH_KEYS)})")
    return Data(**{key: items[key] for key in GRAPH_KEYS if isinstance(items.get(key), Tensor)})
