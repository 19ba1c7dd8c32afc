"""Node-classification graphs for the graph app: Planetoid citation graphs, Zachary's karate club, a CSBM, files.

One concern per module: ``checks`` (``check_graph``), ``sources`` (Planetoid, karate, files, random splits),
``csbm`` (the generated graph), ``sampling`` (NeighborLoader mini-batches) and ``datamodule`` (``GraphData``).

The names below are the package's public interface; configs and old checkpoints name the datamodule as
``datamodules.graph.GraphData``, which keeps resolving through these re-exports.
"""

from .checks import STAGE_MASKS, check_graph
from .csbm import CSBM
from .datamodule import GraphData, Source
from .sampling import TorchNeighborSampler, neighbor_loader, subgraph_bound
from .sources import (
    PLANETOID,
    PLANETOID_SUFFIXES,
    ensure_planetoid_raw,
    load_file,
    load_karate,
    load_planetoid,
    planetoid_raw_files,
    random_split,
)

__all__ = [
    "CSBM", "PLANETOID", "PLANETOID_SUFFIXES", "STAGE_MASKS", "GraphData", "Source", "TorchNeighborSampler",
    "check_graph", "ensure_planetoid_raw", "load_file", "load_karate", "load_planetoid", "neighbor_loader",
    "planetoid_raw_files", "random_split", "subgraph_bound",
]
