"""Any ``torch_geometric.datasets`` class by name (``data.source: pyg``, ``data.dataset: Amazon``,
``data.dataset_args: {name: Photo}``, kept under ``data.root/<class>``), so the graphs PyG already knows need
no code here.

Why by name: PyG ships a few hundred node-classification graphs (Amazon, Coauthor, WikiCS, Flickr, ...) with
their own download and processing; the class is built with ``root`` (``data.root``) when it takes one, and PyG
downloads the raw files there on a connected machine. The dataset's first graph is used; its masks are used when
it has all three (a 2-D mask, several splits, contributes its first column), else the random split applies.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from torch import Tensor
from torch_geometric.data import Data

from core.errors import ConfigError, DataError

from ..base import library_class
from ..paths import DataNotFoundError, describe
from .checks import STAGE_MASKS
from .safe_load import strict_pyg_loads


def pyg_dataset_class(name: str) -> type:
    """``torch_geometric.datasets.<name>``; one error listing close names when there is none."""
    import torch_geometric.datasets as pyg_datasets

    return library_class(pyg_datasets, name)


def load_pyg(name: str, root: Path, args: dict[str, Any] | None = None) -> Data:
    """The first graph of ``torch_geometric.datasets.<name>(root=root, **args)``, as x / edge_index / y (+ edge_attr
    and the masks when the dataset has them)."""
    cls = pyg_dataset_class(name)
    kwargs = dict(args or {})
    params = inspect.signature(cls).parameters
    if "root" in params:
        kwargs.setdefault("root", str(root / name))  # one folder per class: classes with root/raw cannot collide
    where = f"data.source=pyg data.dataset={name}"
    try:
        with strict_pyg_loads(kwargs.get("root", root)):  # processed/ read weights_only, an unsafe one rebuilt
            dataset = cls(**kwargs)
    except TypeError as err:  # a wrong or missing constructor argument
        raise ConfigError(f"{where}: {cls.__name__}{inspect.signature(cls)} cannot be built with data.dataset_args "
                         f"{args or {}}: {err}") from err
    except (OSError, RuntimeError) as err:  # no network, refused download, missing raw files
        raise DataNotFoundError(f"{where}: could not load or download it under {describe(kwargs.get('root', root))} "
                                f"(data.root) ({type(err).__name__}: {err}); run once on a connected machine, or put "
                                f"the dataset's files there") from err
    if len(dataset) == 0:
        raise DataError(f"{where}: the dataset holds no graph")
    data = dataset[0]
    out = {key: data[key] for key in ("x", "edge_index", "y", "edge_attr") if isinstance(data.get(key), Tensor)}
    if "x" not in out:
        raise DataError(f"{where}: the graph has no node features `x`; attnlab's node classifier needs them")
    if isinstance(out.get("y"), Tensor) and out["y"].dim() == 2 and out["y"].size(1) == 1:
        out["y"] = out["y"].squeeze(1)
    for key in STAGE_MASKS:
        mask = data.get(key)
        if isinstance(mask, Tensor):
            out[key] = mask[:, 0] if mask.dim() == 2 else mask
    return Data(**out)
