"""The heterophilous node-classification benchmark (Platonov et al., ICLR 2023) in its own ``.npz`` format.

Each file holds ``node_features`` (N, F) float, ``node_labels`` (N,) int, ``edges`` (E, 2) int (each undirected
link named once) and ``train_masks`` / ``val_masks`` / ``test_masks`` (S, N) bool: S fixed splits (ten in the
published files). ``load_heterophilous(path, split_index)`` returns one graph with split ``split_index``'s masks.

Why a reader of our own: PyG's ``HeterophilousGraphDataset`` downloads the same files and cannot read a given
path; the format is five numpy arrays, read here with ``numpy.load(allow_pickle=False)`` (no code in a data
file runs). The benchmark treats every graph as undirected (its code makes the edges bidirected), so the reader
adds each edge's reverse (PyG ``to_undirected``), as the published numbers were made.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from core.errors import ConfigError, DataError

from ..paths import missing

KEYS = ("node_features", "node_labels", "edges", "train_masks", "val_masks", "test_masks")
MASK_KEYS = {"train_mask": "train_masks", "val_mask": "val_masks", "test_mask": "test_masks"}
SOURCE = "the heterophilous benchmark's files (github.com/yandex-research/heterophilous-graphs, data/*.npz)"


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The six arrays of ``path``; a missing file, a file that is no npz or a missing key is one error."""
    if not path.is_file():
        raise missing("data.path", path, "a heterophilous benchmark .npz (e.g. minesweeper.npz)", SOURCE)
    try:
        with np.load(path, allow_pickle=False) as archive:
            absent = [k for k in KEYS if k not in archive.files]
            if absent:
                raise DataError(f"missing key(s) {', '.join(absent)} (the file has {', '.join(archive.files)})",
                                where=path, expected=f"an npz with {', '.join(KEYS)}")
            return {k: archive[k] for k in KEYS}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"not a readable .npz archive ({type(err).__name__}: {err})", where=path,
                        expected="numpy.savez output with " + ", ".join(KEYS)) from None


def load_heterophilous(path: str | Path, split_index: int = 0) -> Data:
    """One graph of the benchmark with the masks of split ``split_index`` (0-based)."""
    path = Path(path)
    arrays = read_arrays(path)
    x, y, edges = arrays["node_features"], arrays["node_labels"], arrays["edges"]

    def bad(key: str, got: object, expected: str) -> DataError:
        return DataError(f"`{key}` is {got}", where=path, expected=expected)

    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise bad("node_features", f"{x.dtype} {x.shape}", "a numeric (num_nodes, num_features) array")
    num_nodes = x.shape[0]
    if y.shape != (num_nodes,) or not np.issubdtype(y.dtype, np.integer):
        raise bad("node_labels", f"{y.dtype} {y.shape}", f"integer class ids of shape ({num_nodes},), one per node")
    if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
        raise bad("edges", f"{edges.dtype} {edges.shape}", "an integer (num_edges, 2) array of node id pairs")
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise bad("edges", f"ids in [{edges.min()}, {edges.max()}]", f"node ids in [0, {num_nodes - 1}]")
    splits = {arrays[k].shape[0] if arrays[k].ndim == 2 else None for k in MASK_KEYS.values()}
    for key in MASK_KEYS.values():
        mask = arrays[key]
        if mask.ndim != 2 or mask.shape[1] != num_nodes or mask.dtype != np.bool_:
            raise bad(key, f"{mask.dtype} {mask.shape}", f"a bool (num_splits, {num_nodes}) array")
    if len(splits) != 1:
        raise DataError(f"the mask arrays hold different numbers of splits ({sorted(splits)})", where=path,
                        expected="train_masks, val_masks and test_masks with one row per split each")
    num_splits = splits.pop()
    if not 0 <= split_index < num_splits:
        raise ConfigError(f"data.split_index={split_index} but {path} holds {num_splits} splits",
                          expected=f"0..{num_splits - 1}")
    edge_index = torch.from_numpy(np.ascontiguousarray(edges.T)).long()
    data = Data(x=torch.from_numpy(x).float(), edge_index=to_undirected(edge_index, num_nodes=num_nodes),
                y=torch.from_numpy(y).long(), num_nodes=num_nodes)
    for attr, key in MASK_KEYS.items():
        setattr(data, attr, torch.from_numpy(np.ascontiguousarray(arrays[key][split_index])))
    if not bool(data.train_mask.any()):
        raise DataError(f"`train_masks[{split_index}]` selects no node", where=path, expected="a training split")
    return data
