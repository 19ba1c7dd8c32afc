"""Fault injection: hostile but fair inputs for the core, every app, the CLI and checkpoints (issue #18).

Each test plays one fault and checks what the user gets: one ``core.errors.UserError`` naming the file, line or
config key (the CLI prints it as one line), or the fault handled correctly, and no half-written file. The fast
part runs in ``make test``; tests that start a real ``attnlab`` process are marked ``faults_slow`` (CI skips
them: ``-m "not faults_slow"``). ``FAULTS`` counts the faults per app (see ``test_fault_counts``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import AttentionConfig, Encoder, EncoderConfig, MultiHeadSelfAttention, Truncated
from core.errors import CheckpointError, ConfigError, DataError, UserError

ROOT = Path(__file__).resolve().parents[1]
FAULTS: dict[str, int] = {}


def fault(app: str):
    """Count a test as one fault of ``app`` (core, cli, checkpoints, graph, vision, speech, pos, sequence, lra)."""
    def mark(fn):
        FAULTS[app] = FAULTS.get(app, 0) + 1
        return fn
    return mark


# ------------------------------------------------------------------------------------------------------- core
@fault("core")
@pytest.mark.parametrize("options", [{"position": "relative"}, {"score": "additive"}, {}])
def test_length_zero_sequence_with_relative_or_additive_scores(options):
    """#10: a length-0 sequence gave IndexError from amax() in core/scores.py."""
    attn = MultiHeadSelfAttention(16, AttentionConfig(num_heads=2, **options))
    out, weights = attn(torch.randn(2, 0, 16), return_weights=True)
    assert out.shape == (2, 0, 16) and weights.numel() == 0


@fault("core")
@pytest.mark.parametrize("left, right", [(1.5, 0), (2, 0.5), (-1, 3), ("3", 1)])
def test_fractional_truncated_window_is_refused(left, right):
    """Truncated(left=1.5) silently became 1."""
    with pytest.raises(ConfigError, match="whole number"):
        Truncated(left, right)
    assert Truncated(3.0, 2).left == 3  # a whole float is fine


@fault("core")
def test_inf_in_one_input_element_is_named():
    """inf in one element turned the whole sequence NaN unannounced."""
    encoder = Encoder(EncoderConfig(dim=16, depth=1, num_heads=2))
    x = torch.randn(2, 5, 16)
    x[1, 3, 7] = math.inf
    with pytest.raises(DataError, match=r"NaN/Inf.*\(1, 3, 7\)"):
        encoder(x)
    x[1, 3, 7] = 0.0
    assert torch.isfinite(encoder(x)).all()


@fault("core")
def test_user_error_is_one_line_and_a_value_error():
    err = DataError("bad\nrow", where="a.txt:3", expected="two\ncolumns", fix="Fix it.")
    assert isinstance(err, ValueError) and "\n" not in str(err)
    assert str(err) == "a.txt:3: bad row; expected two columns. Fix it."
    assert issubclass(CheckpointError, UserError)


# ------------------------------------------------------------------------------------------------------ graph
class _RunsCode:
    """A pickle that runs a command when loaded with weights_only=False."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


PLANETOID_SHARED = ROOT.parent / "shared" / "data" / "planetoid"


@fault("graph")
@pytest.mark.skipif(not (PLANETOID_SHARED / "Cora" / "raw").is_dir(), reason="no shared Cora raw files")
def test_replaced_pyg_processed_cache_runs_no_code(tmp_path):
    """#1: a processed/data.pt whose pickle runs a command was loaded by PyG with weights_only=False."""
    from datamodules.graph.sources import load_planetoid

    load_planetoid("cora", tmp_path, PLANETOID_SHARED, False)
    marker = tmp_path / "ran"
    torch.save(_RunsCode(marker), tmp_path / "Cora" / "processed" / "data.pt")
    with pytest.warns(UserWarning, match="weights_only=True"):
        data = load_planetoid("cora", tmp_path, PLANETOID_SHARED, False)
    assert not marker.exists() and data.x.shape == (2708, 1433)  # rebuilt from the raw files


@fault("graph")
def test_pyg_loader_never_falls_back_to_unsafe_pickles(tmp_path):
    from datamodules.graph.safe_load import scrub_processed, strict_torch_load

    marker, path = tmp_path / "ran", tmp_path / "processed" / "data.pt"
    path.parent.mkdir()
    torch.save(_RunsCode(marker), path)
    with pytest.raises(DataError, match="weights_only=True"):
        strict_torch_load(str(path))
    with pytest.warns(UserWarning):
        assert scrub_processed(tmp_path) == [path]
    assert not marker.exists() and not path.exists()
    src = (ROOT / "datamodules" / "graph" / "sources.py").read_text() + (ROOT / "datamodules/graph/pyg.py").read_text()
    assert "weights_only.*" not in src  # the silenced PyG warning is gone


def _graph(y, x=None):
    from torch_geometric.data import Data

    n = len(y)
    return Data(x=torch.rand(n, 3) if x is None else x, edge_index=torch.tensor([[0, 1], [1, 0]]),
                y=torch.tensor(y))


@fault("graph")
def test_sentinel_label_on_unlabelled_nodes_is_refused():
    """y = 999 on unlabelled nodes silently built a 1000-class model."""
    from datamodules.graph.checks import check_graph

    with pytest.raises(DataError, match=r"largest is 999.*y = -1"):
        check_graph(_graph([0, 1, 2, 999, 999]), "g.pt")
    check_graph(_graph([0, 1, 2, -1, -1]), "g.pt")


@fault("graph")
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_or_inf_node_features_are_named(value):
    """NaN/inf in graph features stopped at step 0 blaming the learning rate."""
    from datamodules.graph.checks import check_graph

    x = torch.rand(4, 3)
    x[2, 1] = value
    with pytest.raises(DataError, match="node 2, feature column 1"):
        check_graph(_graph([0, 1, 0, 1], x), "g.pt")


@fault("graph")
def test_empty_validation_mask_gives_no_val_batches():
    """#7: val_fraction 0 crashed in torchmetrics (cannot reshape tensor of 0 elements)."""
    from datamodules.graph import GraphData

    data = GraphData(source="karate", val_fraction=0.0)
    data.setup("fit")
    with pytest.warns(UserWarning, match="val_mask selects no node"):
        assert data.val_dataloader() == []
    assert len(data.train_dataloader()) == 1
