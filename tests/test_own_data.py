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
    both_ways = GraphData(source="csv", nodes=nodes, edges=edges, label_column="kind", undirected=True).graph
    assert both_ways.edge_index.size(1) == 10 and [3, 2] in both_ways.edge_index.t().tolist()
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


# ----------------------------------------------------------------------------------------------- vision
def stripes(path: Path, width: int, height: int, colour: tuple[int, int, int]) -> None:
    """An image whose centre square is ``colour`` and whose overhang (left/right or top/bottom) is black."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (width, height), (0, 0, 0))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image.paste(Image.new("RGB", (side, side), colour), (left, top))
    image.save(path)


def image_tree(root: Path, splits: tuple[str, ...], sizes: list[tuple[int, int]]) -> Path:
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255)}
    for split in splits:
        for name, colour in colours.items():
            for i, (w, h) in enumerate(sizes):
                stripes(root / "pics" / split / name / f"{i}.png", w, h, colour)
    return root / "pics"


def test_folder_with_validation_and_no_test_and_mixed_sizes_is_centre_cropped(tmp_path: Path) -> None:
    from datamodules.vision import VisionData

    folder = image_tree(tmp_path, ("train", "validation"), [(16, 8), (8, 12), (10, 10), (12, 12)])
    dm = VisionData(source="folder", path=str(folder), root=str(tmp_path / "data"), test_fraction=0.25, cache=False)
    with pytest.warns(UserWarning, match="resizing the shorter side and centre-cropping all to 8x8"):
        dm.setup()
    assert dm.shape == (3, 8, 8) and dm.splits["val"].names[0].startswith(str(folder / "validation"))
    assert len(dm.splits["val"]) == 8 and len(dm.splits["train"]) + len(dm.splits["test"]) == 8  # no random val
    train = dm.splits["train"].images.float()
    assert train[:, 1].max() == 0 and train.amax(dim=1).min() > 200  # every pixel red or blue: no black overhang
    sized = VisionData(source="folder", path=str(folder), root=str(tmp_path / "data"), image_size=6, cache=False)
    sized.setup()
    assert sized.shape == (3, 6, 6) and sized.splits["val"].images.shape[-2:] == (6, 6)
    x, _ = next(iter(sized.train_dataloader()))
    assert x.shape[1:] == (3, 6, 6)


def test_predict_resizes_and_centre_crops_non_square_images_like_training(tmp_path: Path) -> None:
    from datamodules.vision import VisionData

    folder = image_tree(tmp_path, ("train", "val", "test"), [(8, 8), (8, 8)])
    stripes(tmp_path / "new" / "wide.png", 24, 8, (0, 0, 255))  # blue centre, black sides
    dm = VisionData(source="folder", path=str(folder), root=str(tmp_path / "data"), image_size=8, cache=False,
                    predict_path=str(tmp_path / "new"))
    dm.setup()
    image = dm.predict_images().images[0]
    assert image.shape == (3, 8, 8) and int(image[2].min()) == 255 and int(image[0].max()) == 0  # not squashed
    x, _ = next(iter(dm.predict_dataloader()))
    assert x.shape[1:] == dm.shape


def test_resize_crop_is_timms_eval_resize() -> None:
    from torchvision.transforms import v2

    from datamodules.vision import TIMM_CROP_PCT, resize_crop, scale_size

    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    assert scale_size(32, TIMM_CROP_PCT) == 36  # timm: floor(img_size / crop_pct)
    reference = v2.Compose([v2.Resize(36, antialias=True), v2.CenterCrop(32)])(image)
    assert torch.equal(resize_crop(image, 32, TIMM_CROP_PCT), reference)


def test_folder_errors_name_the_folder(tmp_path: Path) -> None:
    from datamodules.vision import VisionData

    folder = image_tree(tmp_path, ("train",), [(8, 8)])
    stripes(folder / "val" / "green" / "0.png", 8, 8, (0, 255, 0))
    with pytest.raises(ValueError, match=r"val: class folders \['green'\] are not in .*train"):
        VisionData(source="folder", path=str(folder), root=str(tmp_path / "d"), cache=False).setup()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing .*empty/train"):
        VisionData(source="folder", path=str(tmp_path / "empty"), root=str(tmp_path / "d")).setup()
    with pytest.raises(ValueError, match="data.crop_pct must be in"):
        VisionData(crop_pct=1.5)


def test_torchvision_source_builds_a_dataset_class_by_name(tmp_path: Path) -> None:
    from datamodules.vision import VisionData

    args = {"size": 24, "image_size": [3, 10, 14], "num_classes": 3}  # FakeData: no train/test split of its own
    dm = VisionData(source="torchvision", dataset="FakeData", dataset_args=args, image_size=8, val_fraction=0.2,
                    test_fraction=0.25, root=str(tmp_path))
    dm.setup()
    assert dm.shape == (3, 8, 8) and dm.num_classes == 3
    assert len(dm.splits["train"]) + len(dm.splits["val"]) + len(dm.splits["test"]) == 24
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape[1:] == (3, 8, 8) and y.dtype == torch.long
    square = VisionData(source="torchvision", dataset="FakeData", image_size=8, root=str(tmp_path),
                        dataset_args={"size": 12, "image_size": [1, 12, 12], "num_classes": 2})
    square.setup()
    assert square.splits["train"].images.shape[-2:] == (12, 12)  # kept native in memory, resized per image
    assert next(iter(square.val_dataloader()))[0].shape[1:] == (1, 8, 8) == square.shape
    with pytest.raises(ValueError, match="'FakeDta' is not a class of torchvision.datasets; did you mean FakeData"):
        VisionData(source="torchvision", dataset="FakeDta").setup()
    with pytest.raises(ValueError, match=r"FakeData.*cannot be built with .*colour.*data.dataset_args"):
        VisionData(source="torchvision", dataset="FakeData", dataset_args={"colour": 1}).setup()
    with pytest.raises(FileNotFoundError, match="data.download: true"):
        VisionData(source="torchvision", dataset="CIFAR10", root=str(tmp_path / "none")).setup()
    with pytest.raises(ValueError, match="data.source=torchvision needs data.dataset"):
        VisionData(source="torchvision")


# -------------------------------------------------------------------------------------------------- POS
CONLLU = """\
# sent_id = s1
# text = I don't know.
1\tI\tI\tPRON\tPRP\tCase=Nom\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No|Gloss=wit
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

"""


def test_spacy_tokeniser_splits_like_ud(tmp_path: Path) -> None:
    from datamodules.pos import read_text, split_tokens

    assert [t for t, _ in split_tokens("The dog's bone isn't here.")] == \
        ["The", "dog", "'s", "bone", "is", "n't", "here", "."]
    path = tmp_path / "raw.txt"
    path.write_text("I can't go, Sam's car broke.\n\nNew-York\tis  big\n")
    first, second = read_text(path)  # spacy is the default
    assert first.words == ["I", "ca", "n't", "go", ",", "Sam", "'s", "car", "broke", "."]
    assert [t["misc"] for t in first.tokens][:4] == ["_", "SpaceAfter=No", "_", "SpaceAfter=No"]
    assert first.tokens.metadata["text"] == "I can't go, Sam's car broke." and second.where == f"{path}:3"
    pretokenised = read_text(path, tokenizer="whitespace")
    assert pretokenised[0].words[:3] == ["I", "can't", "go,"] and pretokenised[1].words == ["New-York", "is", "big"]
    with pytest.raises(FileNotFoundError, match="data.predict_path = .*absent.txt does not exist"):
        read_text(tmp_path / "absent.txt")


def test_predicted_conllu_fills_only_the_predicted_column(tmp_path: Path) -> None:
    import conllu

    from datamodules.pos import UDTreebank

    (tmp_path / "in.conllu").write_text(CONLLU)
    for keep, tagset in ((False, "upos"), (True, "upos"), (False, "xpos")):
        dm = UDTreebank(predict_path=str(tmp_path / "in.conllu"), keep_columns=keep, tagset=tagset)
        dm.setup("predict")
        text = dm.render_predictions({0: ["X1", "X2", "X3", "X4", "X5"]})
        sentence = conllu.parse(text)[0]
        words = [t for t in sentence if isinstance(t["id"], int)]
        assert [t[tagset] for t in words] == ["X1", "X2", "X3", "X4", "X5"]
        assert sentence.metadata["text"] == "I don't know." and [t["form"] for t in sentence][1] == "don't"
        other = "xpos" if tagset == "upos" else "upos"
        if keep:
            assert [t[other] for t in words] == ["PRP", "VBP", "RB", "VB", "."] and words[0]["lemma"] == "I"
            assert words[0]["feats"] == {"Case": "Nom"} and words[3]["misc"] == {"SpaceAfter": "No", "Gloss": "wit"}
        else:
            column = 3 if tagset == "upos" else 4
            rows = [line.split("\t") for line in text.splitlines() if "\t" in line]
            assert {c for row in rows for i, c in enumerate(row[2:9], start=2) if i != column} == {"_"}
            assert words[3]["misc"] == {"SpaceAfter": "No"} and words[0]["misc"] is None
    again = UDTreebank(predict_path=str(tmp_path / "in.conllu"))
    again.setup("predict")
    assert again.sentences["predict"][0].tokens[0]["lemma"] == "I"  # the input read stays untouched


def test_pos_tokenizer_option_is_checked() -> None:
    from datamodules.pos import UDTreebank

    with pytest.raises(ValueError, match="data.tokenizer must be one of"):
        UDTreebank(tokenizer="nltk")


# ------------------------------------------------------------------------------------------ custom configs
CUSTOM = {"graph": "graph/custom.yaml", "vision": "vision/custom.yaml", "frames": "speech/custom_frames.yaml",
          "utterances": "speech/custom_utterances.yaml", "pos": "pos/custom.yaml"}
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_custom_configs_parse_and_name_no_data_set(name: str, capsys: pytest.CaptureFixture) -> None:
    from apps.cli import main

    path = ROOT / "configs" / CUSTOM[name]
    text = path.read_text()
    assert "REPLACE" in text  # the comments say what to replace
    data = yaml.safe_load(text)["data"]["init_args"]
    assert "predict_output" not in data  # outputs default to the run folder, named after the input, not a data set
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(path), "--print_config"])
    assert done.value.code in (0, None) and "class_path" in capsys.readouterr().out


def test_custom_graph_config_fits_and_predicts_the_example_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from apps.cli import main

    monkeypatch.chdir(tmp_path)
    config = ["--config", str(ROOT / "configs" / CUSTOM["graph"]), *QUIET,
              "--data.nodes", str(FIXTURES / "graph" / "nodes.csv"),
              "--data.edges", str(FIXTURES / "graph" / "edges.csv")]
    main(["fit", *config, "--trainer.max_epochs", "3"])
    main(["predict", *config, "--ckpt_path", "best", "--data.predict_output", str(tmp_path / "nodes.csv")])
    rows = (tmp_path / "nodes.csv").read_text().splitlines()
    assert rows[0] == "node_id,class,prob" and len(rows) == 21  # every node, the three unlabelled ones too
    assert rows[1].startswith("ada,") and {r.split(",")[1] for r in rows[1:]} <= {"chess", "rowing"}  # user's names


@pytest.mark.filterwarnings("ignore:.*custom batch sampler")
def test_custom_pos_config_fits_and_tags_raw_text_ud_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conllu

    from apps.cli import main

    monkeypatch.chdir(tmp_path)
    fixtures = FIXTURES / "pos"
    config = ["--config", str(ROOT / "configs" / CUSTOM["pos"]), *QUIET,
              *[arg for split in ("train", "dev", "test")
                for arg in (f"--data.{split}", str(fixtures / f"{split}.conllu"))]]
    main(["fit", *config, "--trainer.max_epochs", "1"])
    main(["predict", *config, "--ckpt_path", "best", "--data.predict_path", str(fixtures / "text.txt"),
          "--data.predict_output", str(tmp_path / "tagged.conllu")])
    first, second = conllu.parse((tmp_path / "tagged.conllu").read_text())
    assert [t["form"] for t in first] == ["The", "man", "saw", "the", "dog", "'s", "book", "."]
    assert [t["form"] for t in second][:4] == ["She", "ca", "n't", "watch"] and all(t["upos"] for t in second)


def test_bad_own_data_is_one_line_user_error(tmp_path: Path) -> None:
    from core.errors import UserError
    from datamodules.pos import UDTreebank
    from datamodules.vision import VisionData

    nodes = write(tmp_path / "nodes.csv", "id,label,f\na,0,1\nb,1,oops\n")
    edges = write(tmp_path / "edges.csv", "source,target\na,b\n")
    for build in (lambda: GraphData(source="csv", nodes=nodes, edges=edges).setup(),
                  lambda: GraphData(source="pyg"), lambda: VisionData(crop_pct=0.0),
                  lambda: VisionData(source="torchvision", dataset="NoSuchSet").setup(),
                  lambda: UDTreebank(tokenizer="nltk")):
        with pytest.raises(UserError) as error:
            build()
        assert "\n" not in str(error.value)
