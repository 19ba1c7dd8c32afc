"""Own data in the formats people have: graphs as torch.save'd PyG Data / dicts, any torch_geometric.datasets class
and CSV node/edge tables; image folders with val/ or validation/, any torchvision dataset class, mixed sizes
resized and centre-cropped alike in fit, test and predict; raw text tokenised UD-style and predicted CoNLL-U that
fills only the predicted column; the custom configs. Every data set is tiny and made in the test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch_geometric.data import Data

from datamodules.graph import GraphData, load_csv, load_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_CORA = ROOT.parent / "shared" / "data" / "planetoid" / "Cora" / "raw"


# ------------------------------------------------------------------------------------------------ graph
def tiny_graph(n: int = 8) -> Data:
    x = torch.arange(n * 3, dtype=torch.float32).view(n, 3)
    edge_index = torch.tensor([[i for i in range(n - 1)], [i + 1 for i in range(n - 1)]])
    return Data(x=x, edge_index=edge_index, y=torch.tensor([i % 2 for i in range(n)]))


def test_file_source_reads_a_saved_pyg_data_with_extra_attributes(tmp_path: Path) -> None:
    g = tiny_graph()
    g.node_names = [f"n{i}" for i in range(8)]  # extra attributes: ignored
    g.extra = torch.ones(8, 2)
    torch.save(g, tmp_path / "g.pt")
    split = dict(train_fraction=0.5, val_fraction=0.25, split_seed=3)
    loaded = GraphData(source="file", path=str(tmp_path / "g.pt"), **split).graph
    assert torch.equal(loaded.x, g.x) and torch.equal(loaded.edge_index, g.edge_index) and "extra" not in loaded
    again = GraphData(source="file", path=str(tmp_path / "g.pt"), **split).graph
    assert torch.equal(loaded.train_mask, again.train_mask)  # no masks in the file: a seeded random split
    masks = loaded.train_mask.long() + loaded.val_mask.long() + loaded.test_mask.long()
    assert bool((masks == 1).all()) and int(loaded.train_mask.sum()) == 4


def test_file_source_accepts_num_nodes_and_checks_it(tmp_path: Path) -> None:
    g = tiny_graph()
    torch.save({"x": g.x, "edge_index": g.edge_index, "y": g.y, "num_nodes": 8}, tmp_path / "d.pt")
    assert load_file(tmp_path / "d.pt").num_nodes == 8
    torch.save({"x": g.x, "edge_index": g.edge_index, "y": g.y, "num_nodes": 9}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: num_nodes = 9 but `x` has 8 rows"):
        load_file(tmp_path / "bad.pt")


def test_pyg_source_builds_a_dataset_class_by_name(tmp_path: Path) -> None:
    karate = GraphData(source="pyg", dataset="KarateClub", root=str(tmp_path)).graph
    assert karate.num_nodes == 34 and int(karate.train_mask.sum()) > 4  # KarateClub has no val/test: random split
    with pytest.raises(ValueError, match="data.dataset = 'KarateClubs' is not a class.*did you mean KarateClub"):
        GraphData(source="pyg", dataset="KarateClubs").setup()
    with pytest.raises(ValueError, match=r"KarateClub.*cannot be built with data.dataset_args \{'name': 'x'\}"):
        GraphData(source="pyg", dataset="KarateClub", dataset_args={"name": "x"}).setup()
    with pytest.raises(ValueError, match="data.source=pyg needs data.dataset"):
        GraphData(source="pyg")


@pytest.mark.skipif(not SHARED_CORA.is_dir(), reason="no Planetoid copy in shared/data")
def test_pyg_source_uses_the_dataset_masks(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(SHARED_CORA, tmp_path / "Planetoid" / "Cora" / "raw")
    cora = GraphData(source="pyg", dataset="Planetoid", root=str(tmp_path), dataset_args={"name": "Cora"},
                     download=False).graph
    assert cora.num_nodes == 2708 and int(cora.train_mask.sum()) == 140 and int(cora.test_mask.sum()) == 1000


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_csv_source_maps_ids_and_leaves_unlabelled_nodes_out_of_the_masks(tmp_path: Path) -> None:
    nodes = write(tmp_path / "nodes.csv", "id,kind,f1,f2\nalice,cat,1,0\nbob,dog,0,1\n7,cat,1,1\ndan,,0.5,0\n"
                                          "eve,dog,2,2\nfay,cat,0,3\n")
    edges = write(tmp_path / "edges.csv", "source,target,weight\nalice,bob,1\nbob,7,1\n7,dan,2\ndan,eve,1\n"
                                          "eve,fay,1\n")
    dm = GraphData(source="csv", nodes=nodes, edges=edges, label_column="kind", train_fraction=0.4, val_fraction=0.2)
    g = dm.graph
    assert dm.node_ids == ["alice", "bob", "7", "dan", "eve", "fay"] and dm.class_names == ["cat", "dog"]
    assert g.y.tolist() == [0, 1, 0, -1, 1, 0] and g.x.shape == (6, 2) and dm.num_classes == 2
    assert g.edge_index[:, 2].tolist() == [2, 3]  # "7" -> "dan" by id, not by number
    in_a_mask = g.train_mask | g.val_mask | g.test_mask
    assert not bool(in_a_mask[3]) and bool(in_a_mask[[0, 1, 2, 4, 5]].all())
    only_f2 = load_csv(nodes, edges, label_column="kind", feature_columns=["f2"])
    assert only_f2.data.x.shape == (6, 1)
    no_features = write(tmp_path / "plain.csv", "id,label\na,0\nb,1\nc,\n")
    plain = load_csv(no_features, write(tmp_path / "e.csv", "source,target\na,b\n"))
    assert torch.equal(plain.data.x, torch.eye(3)) and plain.classes == ["0", "1"]


@pytest.mark.parametrize("nodes, edges, kwargs, message", [
    ("id,label,f\na,0,1\nb,1,x\n", "source,target\na,b\n", {}, r"nodes\.csv:3: column 'f' holds 'x', not a number"),
    ("id,label,f\na,0,1\na,1,2\n", "source,target\na,b\n", {}, r"nodes\.csv:3: node id 'a' appears twice"),
    ("id,cls,f\na,0,1\n", "source,target\na,a\n", {}, r"nodes\.csv:1: no column 'label'.*\(data.nodes\)"),
    ("id,label,f\na,0,1\nb,1,2\n", "source,target\na,c\n", {}, r"edges\.csv:2: target 'c' is no node id"),
    ("id,label,f\na,0,1\nb,1,2\n", "from,to\na,b\n", {}, r"edges\.csv:1: no column 'source'"),
    ("id,label,f\na,0,1\nb,1,2,3\n", "source,target\na,b\n", {}, r"nodes\.csv:3: 4 cells but the header has 3"),
    ("id,label,f\na,,1\nb,,2\n", "source,target\na,b\n", {}, r"column 'label' is empty on every row"),
])
def test_csv_source_errors_name_file_line_and_column(tmp_path: Path, nodes: str, edges: str, kwargs: dict,
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_csv(write(tmp_path / "nodes.csv", nodes), write(tmp_path / "edges.csv", edges), **kwargs)


def test_csv_source_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.source=csv needs data.nodes and data.edges"):
        GraphData(source="csv", nodes="n.csv")
    with pytest.raises(FileNotFoundError, match="data.nodes = .*absent.csv does not exist"):
        load_csv(tmp_path / "absent.csv", tmp_path / "absent_edges.csv")
    nodes = write(tmp_path / "nodes.csv", "id,label\na,0\nb,1\n")
    file_masks = {"train_mask": torch.tensor([True, True])}
    torch.save({"x": torch.ones(2, 1), "edge_index": torch.zeros(2, 0, dtype=torch.long), "y": torch.tensor([0, -1]),
                **file_masks}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"`train_mask` selects 1 unlabelled node"):
        GraphData(source="file", path=str(tmp_path / "m.pt")).setup()
    edgeless = load_csv(nodes, write(tmp_path / "edges.csv", "source,target\n"))  # isolated nodes only
    assert edgeless.data.edge_index.shape == (2, 0)
