"""Where a graph comes from: Planetoid citation graphs, Zachary's karate club, a ``torch.save``d file, plus the
stratified random split for graphs without their own.

Sources
    cora / citeseer / pubmed  Planetoid ``ind.<name>.*`` files under ``root/<Name>/raw`` (``data.root``): copied
                              from ``shared_root`` (``data.shared_root``, when set and complete), else
                              downloaded (connected machines only); no default location besides ``data.root``
    karate                    PyG's built-in KarateClub (34 nodes, 4 classes), random stratified split
    file                      a ``torch.save``d PyG ``Data`` or dict at ``path`` (``datamodules.graph.files``)
(``csbm``, a generated graph, lives in ``datamodules.graph.csbm``; any ``torch_geometric.datasets`` class in
``datamodules.graph.pyg``; CSV node and edge tables in ``datamodules.graph.tables``.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..paths import DataNotFoundError, describe
from .files import load_file  # noqa: F401  (kept importable here: the reader lives in files.py)
from .safe_load import strict_pyg_loads

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def planetoid_raw_files(name: str) -> list[str]:
    return [f"ind.{name.lower()}.{suffix}" for suffix in PLANETOID_SUFFIXES]


def ensure_planetoid_raw(name: str, root: Path, shared_root: Path | None, download: bool) -> Path:
    """Make ``root/<Name>/raw`` hold the Planetoid files: as they are, copied from ``shared_root``, or downloaded.

    Raises a FileNotFoundError (``DataNotFoundError``) listing the missing files and where to put them when none
    of that works.
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
    shared = f" or under {describe(shared_root / folder / 'raw')} (data.shared_root)" if shared_root is not None \
        else ", or set data.shared_root to a folder holding them in <Name>/raw/ (copied from there)"
    raise DataNotFoundError(
        f"{name}: missing raw files: {', '.join(missing)}; {reason}. Put the Planetoid files "
        f"{', '.join(files)} under {describe(raw_dir)} (data.root){shared}, or run once on a connected machine "
        f"with data.download: true so PyG downloads them (from github.com/kimiyoung/planetoid)."
    )


def load_planetoid(name: str, root: Path, shared_root: Path | None, download: bool) -> Data:
    """The graph with Planetoid's public split (20 labelled nodes per class, 500 val, 1000 test)."""
    from torch_geometric.datasets import Planetoid

    ensure_planetoid_raw(name, root, shared_root, download)
    with strict_pyg_loads(root / PLANETOID[name]):  # processed/ read weights_only, an unsafe one rebuilt
        dataset = Planetoid(str(root), PLANETOID[name], split="public")
    return dataset[0]


def load_karate() -> Data:
    from torch_geometric.datasets import KarateClub

    data = KarateClub()[0]
    return Data(x=data.x, edge_index=data.edge_index, y=data.y)


def random_split(y: Tensor, train: float, val: float, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Stratified masks: per class ``train`` and ``val`` fractions (at least one training node), rest test;
    unlabelled nodes (``y`` = -1) are in no mask."""
    g = torch.Generator().manual_seed(seed)
    masks = [torch.zeros(y.size(0), dtype=torch.bool) for _ in range(3)]
    for c in y[y >= 0].unique().tolist():
        members = (y == c).nonzero().squeeze(1)
        members = members[torch.randperm(members.numel(), generator=g)]
        n_train = max(1, int(round(train * members.numel())))
        n_val = int(round(val * members.numel()))
        masks[0][members[:n_train]] = True
        masks[1][members[n_train:n_train + n_val]] = True
        masks[2][members[n_train + n_val:]] = True
    return masks[0], masks[1], masks[2]
