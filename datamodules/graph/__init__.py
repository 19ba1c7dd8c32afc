"""Node-classification graphs for the graph app: Planetoid citation graphs, Zachary's karate club, a CSBM, files.

One concern per module: ``checks`` (``check_graph``), ``sources`` (Planetoid, karate, random splits), ``files``
(``torch.save``d PyG ``Data`` or dicts), ``pyg`` (any ``torch_geometric.datasets`` class), ``tables`` (CSV nodes
and edges),
``heterophilous`` (the benchmark's ``.npz`` files),
``csbm`` (the generated graph), ``sampling`` (NeighborLoader mini-batches) and ``datamodule`` (``GraphData``).

The names below are the package's public interface; configs and old checkpoints name the datamodule as
``datamodules.graph.GraphData``, which keeps resolving through these re-exports.
"""

from .checks import STAGE_MASKS, check_graph
from .csbm import CSBM
from .datamodule import SOURCES, GraphData, Source
from .files import load_file, pyg_safe_globals
from .heterophilous import load_heterophilous
from .pyg import load_pyg, pyg_dataset_class
from .sampling import TorchNeighborSampler, neighbor_loader, subgraph_bound
from .sources import (
    PLANETOID,
    PLANETOID_SUFFIXES,
    ensure_planetoid_raw,
    load_karate,
    load_planetoid,
    planetoid_raw_files,
    random_split,
)
from .tables import CsvGraph, load_csv

__all__ = [
    "CSBM", "PLANETOID", "PLANETOID_SUFFIXES", "SOURCES", "STAGE_MASKS", "CsvGraph", "GraphData", "Source",
    "TorchNeighborSampler",
    "check_graph", "ensure_planetoid_raw", "load_csv", "load_file", "load_heterophilous", "load_karate",
    "load_planetoid", "load_pyg",
    "neighbor_loader", "planetoid_raw_files", "pyg_dataset_class", "pyg_safe_globals", "random_split",
    "subgraph_bound",
]
