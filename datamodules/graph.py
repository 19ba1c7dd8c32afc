"""Node-classification graphs for the graph app: Planetoid citation graphs, Zachary's karate club, a CSBM.

One graph per run (transductive): every stage sees the whole graph and its own node mask, either in one
full-batch pass (``mode: full``) or as NeighborLoader mini-batches of seed nodes with sampled
neighbourhoods (``mode: neighbor``), so memory depends on the batch size and fan-outs, not on the graph.

Sources
    cora / citeseer / pubmed  Planetoid ``ind.<name>.*`` files under ``root/<Name>/raw``: copied from
                              ``shared_root`` when they are there, else downloaded (connected machines only)
    karate                    PyG's built-in KarateClub (34 nodes, 4 classes), random stratified split
    csbm                      a contextual stochastic block model generated here (see ``CSBM``)
    file                      a ``torch.save``d dict with ``x``, ``edge_index``, ``y`` (+ optional masks,
                              ``edge_attr``) at ``path``
"""

from __future__ import annotations

import math
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import NeighborSampler, SamplerOutput
from torch_geometric.utils import to_undirected

from .base import AttnLabDataModule

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_PLANETOID = PROJECT_ROOT.parent / "shared" / "data" / "planetoid"
STAGE_MASKS = ("train_mask", "val_mask", "test_mask")

Source = Literal["cora", "citeseer", "pubmed", "karate", "csbm", "file"]


# --------------------------------------------------------------------------------------------- checks
def check_graph(data: Data, where: str) -> Data:
    """Raise one ValueError naming ``where`` and the offending key unless ``data`` is a consistent graph.

    Expected: ``x`` float (N, F); ``y`` integer (N,) with labels >= 0; ``edge_index`` integer (2, E) with
    ids in [0, N); optional ``edge_attr`` (E, D); optional masks bool (N,).
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
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{where}: `y` holds label {int(y.min())}; expected class ids >= 0")
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
    return data


# ---------------------------------------------------------------------------------------------- sources
def planetoid_raw_files(name: str) -> list[str]:
    return [f"ind.{name.lower()}.{suffix}" for suffix in PLANETOID_SUFFIXES]


def ensure_planetoid_raw(name: str, root: Path, shared_root: Path | None, download: bool) -> Path:
    """Make ``root/<Name>/raw`` hold the Planetoid files: as they are, copied from ``shared_root``, or downloaded.

    Raises FileNotFoundError listing the missing files and where to put them when none of that works.
    """
    folder = PLANETOID[name]
    raw_dir = root / folder / "raw"
    files = planetoid_raw_files(name)
    missing = [f for f in files if not (raw_dir / f).is_file()]
    if missing and shared_root is not None and all((shared_root / folder / "raw" / f).is_file() for f in missing):
        raw_dir.mkdir(parents=True, exist_ok=True)
        for f in missing:
            shutil.copyfile(shared_root / folder / "raw" / f, raw_dir / f)
        missing = []
    if not missing:
        return raw_dir
    reason = "download disabled (download: false)"
    if download:
        from torch_geometric.datasets import Planetoid

        try:
            Planetoid(str(root), folder)
            return raw_dir
        except Exception as err:  # no network: DNS / connection errors of several kinds
            reason = f"download failed ({type(err).__name__}: {err})"
        missing = [f for f in files if not (raw_dir / f).is_file()]
    shared = f" or under {shared_root / folder / 'raw'}" if shared_root is not None else ""
    raise FileNotFoundError(
        f"{name}: missing raw files: {', '.join(missing)}; {reason}. Put the Planetoid files "
        f"{', '.join(files)} under {raw_dir}{shared} (see ../shared/data/README.md), or run once on a connected "
        f"machine so PyG downloads them."
    )


def load_planetoid(name: str, root: Path, shared_root: Path | None, download: bool) -> Data:
    """The graph with Planetoid's public split (20 labelled nodes per class, 500 val, 1000 test)."""
    from torch_geometric.datasets import Planetoid

    ensure_planetoid_raw(name, root, shared_root, download)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weights_only.*")
        dataset = Planetoid(str(root), PLANETOID[name], split="public")
    return dataset[0]


def load_karate() -> Data:
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    return Data(x=data.x, edge_index=data.edge_index, y=data.y)


@dataclass
class CSBM:
    """Contextual stochastic block model: balanced classes, Gaussian features, homophily-controlled edges.

    Class ``c`` has a random mean direction of norm ``feature_signal`` in ``num_features`` dims; a node's
    features are its class mean plus N(0, I). Each node draws about ``avg_degree`` / 2 edges (made
    undirected); a fraction ``homophily`` of them go to its own class, the rest to other classes.
    ``edge_features`` > 0 adds an ``edge_attr`` of that many columns: a noisy "same class" indicator
    (column 0, flipped with probability ``edge_feature_noise``) and standard-normal noise columns.
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


def load_file(path: Path) -> Data:
    """A graph saved with ``torch.save({"x": ..., "edge_index": ..., "y": ..., ...}, path)`` (or a PyG Data)."""
    if not path.is_file():
        raise FileNotFoundError(f"source=file: {path} does not exist; expected a torch.save'd dict with keys "
                                f"x (N, F), edge_index (2, E), y (N,) and optional train_mask/val_mask/test_mask")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot be read as a torch.save'd dict of tensors ({type(err).__name__}: "
                         f"{err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict with keys x, edge_index, y, got {type(obj).__name__}")
    known = {"x", "edge_index", "y", "edge_attr", *STAGE_MASKS}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ValueError(f"{path}: unexpected keys {unknown}; expected {sorted(known)}")
    return Data(**obj)


def random_split(y: Tensor, train: float, val: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Stratified masks: per class ``train`` and ``val`` fractions (at least one training node), rest test."""
    g = torch.Generator().manual_seed(seed)
    masks = [torch.zeros(y.size(0), dtype=torch.bool) for _ in range(3)]
    for c in y.unique().tolist():
        members = (y == c).nonzero().squeeze(1)
        members = members[torch.randperm(members.numel(), generator=g)]
        n_train = max(1, int(round(train * members.numel())))
        n_val = int(round(val * members.numel()))
        masks[0][members[:n_train]] = True
        masks[1][members[n_train:n_train + n_val]] = True
        masks[2][members[n_train + n_val:]] = True
    return masks[0], masks[1], masks[2]


# ------------------------------------------------------------------------------------------- sampling
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
    for Planetoid, the file's own masks for ``source: file`` when it holds all three, random otherwise.
    ``normalize``: "row" (features sum to 1, as GCN/GAT on Planetoid), "standard" (zero mean, unit
    variance per column) or "none". ``positional_encoding``: "laplacian"
    (``pe_dim`` Laplacian eigenvectors) or "random_walk" (``pe_dim`` return probabilities), appended to the
    (normalised) features. ``predict_output``: the CSV ``attnlab predict`` writes (node_id, class, prob).
    """

    def __init__(
        self,
        source: Source = "karate",
        root: str = "data/planetoid",
        shared_root: str | None = str(SHARED_PLANETOID),
        download: bool = True,
        path: str | None = None,
        split: Literal["public", "random"] | None = None,
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
        predict_output: str = "predictions.csv",
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        self.predict_output = predict_output
        if source not in (*PLANETOID, "karate", "csbm", "file"):
            raise ValueError(f"data.source must be one of {[*PLANETOID, 'karate', 'csbm', 'file']}, got {source!r}")
        if source == "file" and not path:
            raise ValueError("data.source=file needs data.path: a torch.save'd dict with x, edge_index, y")
        if split is None:  # a file's own masks when it has all three (see load), else random
            split = "public" if source in PLANETOID else None if source == "file" else "random"
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
        self.download, self.split = download, split
        self.train_fraction, self.val_fraction, self.split_seed = train_fraction, val_fraction, split_seed
        self.csbm = csbm or CSBM()
        self.normalize, self.positional_encoding, self.pe_dim = normalize, positional_encoding, pe_dim
        self.mode, self.num_neighbors = mode, list(num_neighbors or [])
        self.data: Data | None = None

    # -------------------------------------------------------------------- data
    def prepare_data(self) -> None:
        if self.source in PLANETOID:
            ensure_planetoid_raw(self.source, self.root, self.shared_root, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = self.load()

    def load(self) -> Data:
        """The graph with features normalised, positional encodings appended and masks set, checked."""
        where = str(self.path) if self.source == "file" else f"data.source={self.source}"
        if self.source in PLANETOID:
            data = load_planetoid(self.source, self.root, self.shared_root, self.download)
        elif self.source == "karate":
            data = load_karate()
        elif self.source == "csbm":
            data = self.csbm.generate()
        else:
            data = load_file(self.path)
        check_graph(data, where)
        data.y = data.y.long()
        if self.split == "random" or not all(isinstance(getattr(data, k, None), Tensor) for k in STAGE_MASKS):
            data.train_mask, data.val_mask, data.test_mask = random_split(
                data.y, self.train_fraction, self.val_fraction, self.split_seed)
        if not bool(data.train_mask.any()):
            raise ValueError(f"{where}: train_mask selects no node")
        data.x = self._normalized(data.x.float())
        if self.positional_encoding != "none":
            data.x = torch.cat([data.x, self._positional(data)], dim=1)
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


def subgraph_bound(batch_size: int, num_neighbors: list[int]) -> int:
    """Most nodes a NeighborLoader batch can hold: seeds times the product of fan-outs, summed over hops."""
    total, layer = batch_size, batch_size
    for k in num_neighbors:
        layer = layer * k if k > 0 else math.inf
        total += layer
    return total
