"""``GraphData``: one node-classification graph per run (transductive).

Every stage sees the whole graph and its own node mask, either in one full-batch pass (``mode: full``) or as
NeighborLoader mini-batches of seed nodes with sampled neighbourhoods (``mode: neighbor``), so memory depends on
the batch size and fan-outs, not on the graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from core.errors import ConfigError, DataError

from ..base import AttnLabDataModule
from .checks import STAGE_MASKS, check_graph
from .csbm import CSBM
from .files import load_file
from .heterophilous import load_heterophilous
from .pyg import load_pyg
from .sampling import neighbor_loader
from .sources import PLANETOID, ensure_planetoid_raw, load_karate, load_planetoid, random_split
from .tables import load_csv

Source = Literal["cora", "citeseer", "pubmed", "karate", "csbm", "file", "pyg", "csv", "heterophilous"]
SOURCES = (*PLANETOID, "karate", "csbm", "file", "pyg", "csv", "heterophilous")
OWN_MASKS = ("file", "pyg", "heterophilous")  # sources whose graphs may carry their own split


def _first(items: list[Data]) -> Data:
    return items[0]


# ------------------------------------------------------------------------------------------ datamodule
class GraphData(AttnLabDataModule):
    """One node-classification graph; batches are PyG ``Data`` objects.

    ``mode: full`` yields the whole graph once per epoch with ``train_mask`` / ``val_mask`` / ``test_mask``
    saying which nodes count. ``mode: neighbor`` yields NeighborLoader subgraphs whose first
    ``batch.batch_size`` nodes are the seeds (the stage's masked nodes, all nodes for predict), sampling
    ``num_neighbors[h]`` in-neighbours per node at hop h (-1 = all; use one entry per model layer).

    ``split``: "public" (Planetoid's 20 per class / 500 / 1000; Planetoid sources only) or "random"
    (stratified ``train_fraction`` / ``val_fraction`` / rest, fixed by ``split_seed``). None picks public
    for Planetoid, the graph's own masks for ``source: file`` / ``pyg`` when it holds all three, random otherwise.
    Your own graph: ``source: file`` (``path``: a ``torch.save``d PyG ``Data`` or dict), ``source: pyg``
    (``dataset``: a ``torch_geometric.datasets`` class name, ``dataset_args``: its other arguments, kept under
    ``root``) or ``source: csv`` (``nodes`` / ``edges`` CSV files; ``id_column``, ``label_column``,
    ``feature_columns``, ``source_column``, ``target_column`` name their columns; empty labels = unlabelled).
    The heterophilous benchmark (Platonov et al. 2023): ``source: heterophilous``, ``path``: its ``.npz``
    (``minesweeper.npz``, ...), ``split_index``: which of its ten fixed splits (edges made undirected as there).
    Edges are directed as given (``edge_index[0]`` -> ``edge_index[1]``: the target attends to the source);
    ``undirected: true`` adds every edge's reverse (an edge list that names each link once).
    ``normalize``: "row" (features sum to 1, as GCN/GAT on Planetoid), "standard" (zero mean, unit
    variance per column) or "none". ``positional_encoding``: "laplacian"
    (``pe_dim`` Laplacian eigenvectors) or "random_walk" (``pe_dim`` return probabilities), appended to the
    (normalised) features. ``predict_output``: the CSV ``attnlab predict`` writes (node_id, class, prob);
    None: ``predictions.csv`` in the predict run's folder.
    ``root``: the writable folder Planetoid files are kept in (PyG writes ``processed/`` next to ``raw/``);
    ``shared_root``: a folder to copy missing raw files from (None: none; a config may name a read-only copy).

    Args:
        source: where the graph comes from: cora|citeseer|pubmed (Planetoid), karate, csbm (generated), file, pyg, csv
        root: writable folder for Planetoid files (source pyg: the dataset's root, kept under root/<class>)
        shared_root: folder to copy missing Planetoid raw files from; null: none
        download: download missing Planetoid raw files (connected machines only)
        path: source file: a torch.save'd PyG Data or dict with x, edge_index, y (masks optional); source
            heterophilous: the benchmark's .npz
        split_index: source heterophilous: which fixed split of the file (0-based; the benchmark has ten)
        split: public (Planetoid's 20 per class / 500 / 1000) or random; null: public for Planetoid, the graph's own
            masks for file/pyg/heterophilous when it has all three, else random
        train_fraction: share of labelled nodes in train (split random, stratified by class)
        val_fraction: share of labelled nodes in val (split random); the rest is test
        split_seed: seed of the random split
        csbm: the generated graph of source csbm (CSBM: num_nodes, num_classes, num_features, avg_degree, homophily,
            feature_signal, edge_features, edge_feature_noise, seed)
        normalize: node features: none, row (each row sums to 1, as GCN/GAT on Planetoid) or standard (zero mean, unit
            variance per column)
        positional_encoding: appended to the features: none, laplacian (pe_dim eigenvectors) or random_walk (pe_dim
            return probabilities)
        pe_dim: columns of the positional encoding
        mode: full (the whole graph once per step, stage masks say which nodes count) or neighbor (NeighborLoader
            subgraphs)
        num_neighbors: mode neighbor: in-neighbours sampled per node at each hop, one entry per model layer (-1: all)
        batch_size: mode neighbor: seed nodes per subgraph batch (unused in mode full)
        predict_output: CSV attnlab predict writes (node_id, class, prob); null: predictions.csv in the predict run's
            folder
        dataset: source pyg: a torch_geometric.datasets class name (e.g. Amazon)
        dataset_args: source pyg: the class's other arguments (e.g. {name: Photo})
        nodes: source csv: nodes CSV with a header (id, label, feature columns)
        edges: source csv: edges CSV with a header (source, target node ids)
        id_column: source csv: the nodes CSV's id column
        label_column: source csv: the nodes CSV's label column (empty cell: unlabelled node)
        feature_columns: source csv: numeric feature columns; null: every column but id and label
        source_column: source csv: the edges CSV's source-node column
        target_column: source csv: the edges CSV's target-node column (the target attends to the source)
        undirected: add every edge's reverse (an edge list naming each link once)
        virtual_node: add one node linked both ways to every node (PyG VirtualNode): a global token every node reads
            from and writes to in each layer, as BigBird's global tokens or Exphormer's virtual nodes; zero
            features, in no mask, not predicted
    """

    def __init__(
        self,
        source: Source = "karate",
        root: str = "data/planetoid",
        shared_root: str | None = None,
        download: bool = True,
        path: str | None = None,
        split: Literal["public", "random"] | None = None,
        split_index: int = 0,
        train_fraction: float = 0.6,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        csbm: CSBM | None = None,
        normalize: Literal["none", "row", "standard"] = "none",
        positional_encoding: Literal["none", "laplacian", "random_walk"] = "none",
        pe_dim: int = 8,
        mode: Literal["full", "neighbor"] = "full",
        num_neighbors: list[int] | None = None,
        batch_size: int = 512,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        predict_output: str | None = None,
        dataset: str | None = None,
        dataset_args: dict[str, Any] | None = None,
        nodes: str | None = None,
        edges: str | None = None,
        id_column: str = "id",
        label_column: str = "label",
        feature_columns: list[str] | None = None,
        source_column: str = "source",
        target_column: str = "target",
        undirected: bool = False,
        virtual_node: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        self.predict_output = predict_output
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {list(SOURCES)}, got {source!r}")
        if source == "heterophilous" and not path:
            raise ConfigError("data.source=heterophilous needs data.path: the benchmark's .npz (e.g. "
                              "minesweeper.npz, with node_features, node_labels, edges and ten split masks)")
        if split_index < 0:
            raise ConfigError(f"data.split_index must be >= 0, got {split_index}")
        if source == "file" and not path:
            raise ValueError("data.source=file needs data.path: a torch.save'd torch_geometric Data or dict with x, "
                             "edge_index, y")
        if source == "pyg" and not dataset:
            raise ConfigError("data.source=pyg needs data.dataset: a torch_geometric.datasets class name, e.g. Amazon "
                              "(with data.dataset_args: {name: Photo})")
        if source == "csv" and not (nodes and edges):
            raise ConfigError("data.source=csv needs data.nodes and data.edges: a nodes CSV (id, label, features) "
                              "and an edges CSV (source, target)")
        if split is None:  # a file's or dataset's own masks when it has all three (see load), else random
            split = "public" if source in PLANETOID else None if source in OWN_MASKS else "random"
        if split == "public" and source not in PLANETOID:
            raise ValueError(f"data.split=public exists for Planetoid sources only, not {source!r}; use random")
        if not (0.0 < train_fraction and 0.0 <= val_fraction and train_fraction + val_fraction < 1.0):
            raise ValueError(f"data: need train_fraction > 0, val_fraction >= 0 and their sum < 1, got "
                             f"{train_fraction}, {val_fraction}")
        if mode == "neighbor" and (not num_neighbors or any(k == 0 or k < -1 for k in num_neighbors)):
            raise ValueError(f"data.mode=neighbor needs num_neighbors: one fan-out per layer, each > 0 or -1 "
                             f"(all), got {num_neighbors}")
        if positional_encoding != "none" and pe_dim < 1:
            raise ValueError(f"data.pe_dim must be >= 1 with positional_encoding={positional_encoding}, "
                             f"got {pe_dim}")
        self.source, self.root, self.path = source, Path(root), Path(path) if path else None
        self.shared_root = Path(shared_root) if shared_root else None
        self.download, self.split, self.split_index = download, split, split_index
        self.train_fraction, self.val_fraction, self.split_seed = train_fraction, val_fraction, split_seed
        self.csbm = csbm or CSBM()
        self.normalize, self.positional_encoding, self.pe_dim = normalize, positional_encoding, pe_dim
        self.mode, self.num_neighbors = mode, list(num_neighbors or [])
        self.dataset, self.dataset_args = dataset, dict(dataset_args or {})
        self.nodes, self.edges, self.undirected, self.virtual_node = nodes, edges, undirected, virtual_node
        self.real_nodes: int | None = None  # nodes of the graph itself (the virtual node comes after them)
        self.columns = dict(id_column=id_column, label_column=label_column, feature_columns=feature_columns,
                            source_column=source_column, target_column=target_column)
        self.data: Data | None = None
        # The user's node ids and class names (source: csv); None: nodes and classes are their indices.
        self.node_ids: list[str] | None = None
        self.class_names: list[str] | None = None

    # -------------------------------------------------------------------- data
    def prepare_data(self) -> None:
        if self.source in PLANETOID:
            ensure_planetoid_raw(self.source, self.root, self.shared_root, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = self.load()

    def load(self) -> Data:
        """The graph with features normalised, positional encodings appended and masks set, checked."""
        where = (str(self.path) if self.source in ("file", "heterophilous") else f"{self.nodes}"
                 if self.source == "csv" else f"data.source={self.source}")
        if self.source in PLANETOID:
            data = load_planetoid(self.source, self.root, self.shared_root, self.download)
        elif self.source == "karate":
            data = load_karate()
        elif self.source == "csbm":
            data = self.csbm.generate()
        elif self.source == "pyg":
            data = load_pyg(self.dataset, self.root, self.dataset_args)
        elif self.source == "csv":
            table = load_csv(self.nodes, self.edges, **self.columns)
            data, self.node_ids, self.class_names = table.data, table.node_ids, table.classes
        elif self.source == "heterophilous":
            data = load_heterophilous(self.path, self.split_index)
        else:
            data = load_file(self.path)
        check_graph(data, where)
        data.y = data.y.long()
        if self.undirected:  # an edge list that names each friendship once: both ends attend to each other
            if getattr(data, "edge_attr", None) is not None:
                data.edge_index, data.edge_attr = to_undirected(data.edge_index, data.edge_attr, data.num_nodes)
            else:
                data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
        if self.split == "random" or not all(isinstance(getattr(data, k, None), Tensor) for k in STAGE_MASKS):
            data.train_mask, data.val_mask, data.test_mask = random_split(
                data.y, self.train_fraction, self.val_fraction, self.split_seed)
        if not bool(data.train_mask.any()):
            raise ValueError(f"{where}: train_mask selects no node")
        data.x = self._normalized(data.x.float())
        if self.positional_encoding != "none":
            data.x = torch.cat([data.x, self._positional(data)], dim=1)
        self.real_nodes = data.num_nodes
        if self.virtual_node:  # appended last: node ids 0..N-1 keep their meaning
            from torch_geometric.transforms import VirtualNode

            data = VirtualNode()(data)
            del data.edge_type  # the model reads no edge types
        return data

    def _normalized(self, x: Tensor) -> Tensor:
        if self.normalize == "row":
            return x / x.sum(dim=1, keepdim=True).clamp(min=1e-12)
        if self.normalize == "standard":
            return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)
        return x

    def _positional(self, data: Data) -> Tensor:
        from torch_geometric.transforms import AddLaplacianEigenvectorPE, AddRandomWalkPE

        graph = Data(edge_index=to_undirected(data.edge_index, num_nodes=data.num_nodes), num_nodes=data.num_nodes)
        if self.positional_encoding == "laplacian":
            if self.pe_dim >= data.num_nodes - 1:
                raise ValueError(f"data.pe_dim={self.pe_dim} Laplacian eigenvectors need more than "
                                 f"{self.pe_dim + 1} nodes, the graph has {data.num_nodes}")
            with torch.random.fork_rng():  # the transform flips eigenvector signs at random
                torch.manual_seed(self.split_seed)
                graph = AddLaplacianEigenvectorPE(self.pe_dim, attr_name="pe", is_undirected=True)(graph)
        else:
            graph = AddRandomWalkPE(self.pe_dim, attr_name="pe")(graph)
        return graph.pe.float()

    @property
    def graph(self) -> Data:
        if self.data is None:
            self.setup()
        return self.data

    @property
    def num_features(self) -> int:
        return self.graph.x.size(1)

    @property
    def num_classes(self) -> int:
        return int(self.graph.y.max()) + 1

    @property
    def edge_dim(self) -> int | None:
        attr = getattr(self.graph, "edge_attr", None)
        return None if attr is None else (1 if attr.dim() == 1 else attr.size(1))

    # ----------------------------------------------------------------- loaders
    def _loader(self, stage: str):
        data = self.graph
        mask = getattr(data, f"{stage}_mask", None) if stage != "predict" else None
        if mask is not None and not bool(mask.any()):  # e.g. val_fraction: 0 -- no batch instead of 0-node metrics
            if stage == "test":
                raise DataError(f"data.source={self.source}: test_mask selects no node", expected="a test split",
                                fix="Lower data.train_fraction / data.val_fraction or give the graph test nodes.")
            rank_zero_warn(f"data: {stage}_mask selects no node (data.val_fraction = {self.val_fraction}); "
                           f"no {stage} batches, so no {stage} metrics and checkpoints follow the last epoch")
            return []
        if self.mode == "full":
            return DataLoader([data], batch_size=1, collate_fn=_first)
        input_nodes = None if stage == "predict" else getattr(data, f"{stage}_mask")
        return neighbor_loader(data, self.num_neighbors, input_nodes, self.batch_size, shuffle=stage == "train",
                               num_workers=self.num_workers)

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("predict")
