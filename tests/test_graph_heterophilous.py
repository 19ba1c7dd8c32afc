"""The heterophilous benchmark's format, metric choice and model shape: npz reader (masks, undirected edges, one
clear error per bad file), ROC-AUC for two classes, and the residual / "-sep" blocks equal to their references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassAUROC

from apps.cli import main
from apps.graph import AdjacencyMask, GraphLayer, NodeClassifier
from apps.graph_layers import SeparateSelf
from core import EdgeMask
from core.errors import ConfigError, DataError
from datamodules.graph import GraphData, load_heterophilous
from datamodules.paths import DataNotFoundError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "heterophilous"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks are implicitly disabled")


def write_benchmark(path: Path, num_nodes: int = 60, classes: int = 2, splits: int = 3, seed: int = 0,
                    **override: np.ndarray) -> Path:
    """A small file in the benchmark's format: a ring plus chords, features that carry the label, S splits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, num_nodes)
    features = rng.normal(size=(num_nodes, 5)).astype(np.float32)
    features[:, 0] += 2.0 * labels
    ring = np.stack([np.arange(num_nodes), (np.arange(num_nodes) + 1) % num_nodes], axis=1)
    chords = rng.integers(0, num_nodes, (num_nodes, 2))
    edges = np.concatenate([ring, chords[chords[:, 0] != chords[:, 1]]])
    masks = {k: np.zeros((splits, num_nodes), dtype=bool) for k in ("train_masks", "val_masks", "test_masks")}
    for s in range(splits):
        order = np.random.default_rng(100 + s).permutation(num_nodes)
        third = num_nodes // 3
        for i, key in enumerate(masks):
            masks[key][s, order[i * third:(i + 1) * third]] = True
    arrays = {"node_features": features, "node_labels": labels, "edges": edges, **masks, **override}
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------- the reader
def test_reader_takes_the_masks_of_the_chosen_split_and_makes_edges_undirected(tmp_path):
    path = write_benchmark(tmp_path / "g.npz")
    raw = np.load(path)
    for split in (0, 2):
        data = load_heterophilous(path, split)
        for attr, key in (("train_mask", "train_masks"), ("val_mask", "val_masks"), ("test_mask", "test_masks")):
            assert torch.equal(getattr(data, attr), torch.from_numpy(raw[key][split]))
    pairs = {tuple(e) for e in data.edge_index.t().tolist()}
    assert all((t, s) in pairs for s, t in pairs)  # every edge has its reverse
    assert {(int(s), int(t)) for s, t in raw["edges"]} <= pairs
    assert torch.equal(data.y, torch.from_numpy(raw["node_labels"]))


def test_datamodule_reads_the_file_and_keeps_its_split(tmp_path):
    path = write_benchmark(tmp_path / "g.npz", classes=3)
    dm = GraphData(source="heterophilous", path=str(path), split_index=1)
    graph = dm.graph
    assert dm.num_classes == 3 and dm.num_features == 5
    assert torch.equal(graph.val_mask, torch.from_numpy(np.load(path)["val_masks"][1]))


@pytest.mark.parametrize("case, key", [
    ("missing_key", "test_masks"), ("mask_shape", "val_masks"), ("edge_range", "edges"),
    ("labels_float", "node_labels"),
])
def test_a_bad_file_is_one_error_naming_the_file_and_key(tmp_path, case, key):
    path = tmp_path / "bad.npz"
    if case == "missing_key":
        write_benchmark(path)
        arrays = dict(np.load(path))
        del arrays["test_masks"]
        np.savez(path, **arrays)
    elif case == "mask_shape":
        write_benchmark(path, val_masks=np.zeros((3, 7), dtype=bool))
    elif case == "edge_range":
        write_benchmark(path, edges=np.array([[0, 1], [1, 600]]))
    else:
        write_benchmark(path, node_labels=np.zeros(60, dtype=np.float32))
    with pytest.raises(DataError) as err:
        load_heterophilous(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_not_an_npz_and_a_missing_file_name_the_file_and_the_key(tmp_path):
    text = tmp_path / "graph.npz"
    text.write_text("node,label\n")
    with pytest.raises(DataError, match="graph.npz.*not a readable .npz"):
        load_heterophilous(text)
    with pytest.raises(DataNotFoundError, match="data.path"):
        load_heterophilous(tmp_path / "absent.npz")
    with pytest.raises(ConfigError, match="data.path"):
        GraphData(source="heterophilous")


def test_split_index_out_of_range_names_the_key(tmp_path):
    path = write_benchmark(tmp_path / "g.npz", splits=3)
    with pytest.raises(ConfigError, match=r"data.split_index=3.*0\.\.2"):
        load_heterophilous(path, 3)


@pytest.mark.skipif(not (SHARED / "minesweeper.npz").is_file(), reason="needs ../shared/data/heterophilous")
def test_the_published_minesweeper_file_reads_as_the_benchmark_describes_it():
    dm = GraphData(source="heterophilous", path=str(SHARED / "minesweeper.npz"), split_index=9)
    g = dm.graph
    assert (g.num_nodes, g.edge_index.size(1), dm.num_features, dm.num_classes) == (10_000, 2 * 39_402, 7, 2)
    assert [int(m.sum()) for m in (g.train_mask, g.val_mask, g.test_mask)] == [5000, 2500, 2500]
    model = NodeClassifier()
    model.resolve_monitor(dm)
    assert model.monitor == "val/roc_auc"


# ------------------------------------------------------------------------------------------- the metric
def test_auto_metric_is_roc_auc_for_two_classes_and_accuracy_otherwise(tmp_path):
    assert NodeClassifier(in_channels=5, num_classes=2).monitor == "val/roc_auc"
    assert NodeClassifier(in_channels=5, num_classes=5).monitor == "val/acc"
    assert NodeClassifier(in_channels=5, num_classes=2, metric="accuracy").monitor == "val/acc"
    with pytest.raises(ConfigError, match="two classes"):
        NodeClassifier(in_channels=5, num_classes=3, metric="roc_auc")
    five = GraphData(source="heterophilous", path=str(write_benchmark(tmp_path / "five.npz", classes=5)))
    model = NodeClassifier()
    model.resolve_monitor(five)
    assert model.monitor == "val/acc"


def rank_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The Mann-Whitney form of the ROC-AUC: the share of (positive, negative) pairs ranked right (ties half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def test_the_two_class_auroc_on_logits_is_the_binary_auc_of_p_class_1():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(200, 2, generator=g), torch.randint(0, 2, (200,), generator=g)
    metric = MulticlassAUROC(2, average="macro")
    metric.update(logits, labels)
    assert float(metric.compute()) == pytest.approx(rank_auc(logits.softmax(-1)[:, 1], labels), abs=1e-6)


def test_fit_and_test_report_and_monitor_roc_auc_on_a_two_class_file(tmp_path):
    path = write_benchmark(tmp_path / "g.npz")
    common = ["--config", str(ROOT / "configs" / "graph" / "minesweeper.yaml"), "--data.path", str(path),
              "--trainer.max_epochs", "10", "--model.hidden", "16", "--model.depth", "2",
              "--trainer.default_root_dir", str(tmp_path / "runs"), *QUIET]
    main(["fit", *common])
    best = next((tmp_path / "runs").rglob("best-*.ckpt"))
    callbacks = torch.load(best, weights_only=False)["callbacks"]
    assert any("val/roc_auc" in str(key) for key in callbacks)
    main(["test", *common, "--ckpt_path", str(best)])
    metrics = json.loads(next((tmp_path / "runs").rglob("*.metrics.json")).read_text())["metrics"]
    assert 0.0 <= metrics["test/roc_auc"] <= 1.0 and "test/acc" in metrics
    model = NodeClassifier.load_from_checkpoint(best).eval()
    data = GraphData(source="heterophilous", path=str(path)).graph
    with torch.no_grad():
        probs = model(data.x, model.pattern(data)).softmax(-1)
    mask = data.test_mask
    assert metrics["test/roc_auc"] == pytest.approx(rank_auc(probs[mask, 1], data.y[mask]), abs=1e-5)


# ------------------------------------------------------------------------------------------ the -sep block
def small_graph(num_nodes: int = 9, isolated: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    edges = torch.randint(0, num_nodes, (2, 30), generator=g)
    edges = edges[:, edges[0] != edges[1]]
    if isolated:  # node 0 has no incoming edge
        edges = edges[:, edges[1] != 0]
    else:  # every node has one incoming edge
        ring = torch.stack([torch.arange(num_nodes), (torch.arange(num_nodes) + 1) % num_nodes])
        edges = torch.cat([edges, ring], dim=1)
    return torch.randn(num_nodes, 16, generator=g), edges


@pytest.mark.parametrize("isolated", [False, True])
def test_sep_attention_equals_the_textbook_formula_over_neighbours_only(isolated):
    """W_s [h_i ‖ W^o Σ_{j→i, j≠i} softmax_j(q_i·k_j/√d) v_j]; a node without neighbours sums nothing."""
    torch.manual_seed(0)
    h, edges = small_graph(isolated=isolated)
    heads, dim = 4, 16
    sep = SeparateSelf(GraphLayer("attention", dim, dim, heads, score="dot"), dim).eval()
    out = sep(h, EdgeMask(edges, add_self_loops=False))
    conv = sep.layer.conv
    q, k, v = conv.qkv(h).view(-1, 3, heads, dim // heads).unbind(1)
    adjacency = torch.zeros(h.size(0), h.size(0), dtype=torch.bool)
    adjacency[edges[1], edges[0]] = True  # no diagonal: edges j -> i only
    scores = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(dim // heads)
    weights = scores.masked_fill(~adjacency, float("-inf")).softmax(-1).nan_to_num(0.0)
    message = conv.proj(torch.einsum("hij,jhd->ihd", weights, v).reshape(h.size(0), dim))
    expected = sep.combine(torch.cat([h, message], dim=-1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    if isolated:
        alone = sep.combine(torch.cat([h[0], conv.proj(torch.zeros(dim))]))  # W^o of an empty (zero) sum
        torch.testing.assert_close(out[0], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("score", ["dot", "additive"])
def test_sep_attention_on_edges_equals_the_dense_backend_in_outputs_and_gradients(score):
    torch.manual_seed(1)
    h, edges = small_graph()
    sep = SeparateSelf(GraphLayer("attention", 16, 16, 4, score=score), 16).eval()
    x_edges, x_dense = h.clone().requires_grad_(), h.clone().requires_grad_()
    edge_out = sep(x_edges, EdgeMask(edges, add_self_loops=False))
    adjacency = torch.zeros(9, 9, dtype=torch.bool)
    adjacency[edges[1], edges[0]] = True
    dense_out = sep(x_dense, AdjacencyMask(adjacency))
    torch.testing.assert_close(edge_out, dense_out, rtol=1e-5, atol=1e-6)
    edge_out.square().sum().backward()
    dense_out.square().sum().backward()
    torch.testing.assert_close(x_edges.grad, x_dense.grad, rtol=1e-5, atol=1e-6)


def test_sep_model_drops_self_loops_and_the_residual_model_matches_its_dense_step(tmp_path):
    model = NodeClassifier(in_channels=16, num_classes=3, blocks="residual", separate_self=True, hidden=16,
                           depth=2, num_heads=4, norm="layer", input_dropout=0.0, dropout=0.0).eval()
    h, edges = small_graph()
    data = type("G", (), {"edge_index": edges})()
    pattern = model.pattern(data)
    processed = pattern.processed(9)
    assert not bool((processed[0] == processed[1]).any())  # neighbours only
    adjacency = torch.zeros(9, 9, dtype=torch.bool)
    adjacency[edges[1], edges[0]] = True
    torch.testing.assert_close(model(h, pattern), model(h, AdjacencyMask(adjacency)), rtol=1e-5, atol=1e-6)


def test_residual_blocks_and_sep_need_their_companions():
    with pytest.raises(ConfigError, match="separate_self"):
        NodeClassifier(in_channels=4, num_classes=2, separate_self=True)
    with pytest.raises(ConfigError, match="input_proj"):
        NodeClassifier(in_channels=4, num_classes=2, blocks="residual", input_proj=False)


@pytest.mark.parametrize("layer", ["gat", "transformer_conv"])
def test_pyg_baselines_run_in_the_residual_sep_shape(layer):
    model = NodeClassifier(in_channels=16, num_classes=2, blocks="residual", separate_self=True, hidden=16,
                           depth=2, num_heads=4, layer=layer, norm="layer")
    h, edges = small_graph()
    data = type("G", (), {"edge_index": edges})()
    logits = model(h, model.pattern(data))
    logits.sum().backward()
    assert logits.shape == (9, 2) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
