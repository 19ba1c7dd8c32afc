"""Node classification: features -> projection -> edge-masked self-attention layers -> linear head.

A graph transformer on the core: each layer is ``core.MultiHeadSelfAttention`` over the nodes with an
``EdgeMask`` pattern (node i attends to its in-neighbours and itself), so the attention itself lives in
core. ``layer`` swaps that layer for PyG's GATConv, GCNConv or TransformerConv in the same skeleton, so
baselines train in the same loop on the same graph (deduplicated, one self loop per node). The layers
are stacked GAT-style or, with ``blocks: residual``, in the heterophilous benchmark's pre-norm residual blocks,
optionally "-sep" (``apps.graph_layers``). Two-class data is scored by ROC-AUC (``metric``).

Batches are PyG ``Data`` objects from ``datamodules.graph.GraphData``: the whole graph with stage masks
(full batch) or NeighborLoader subgraphs whose first ``batch.batch_size`` nodes are the seeds.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.export import Dim
from torch_geometric.data import Data
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC

from core import EdgeMask
from core.errors import CheckpointError, ConfigError

from .base import AttnLabModule, OptimConfig
from .export import ExportSpec
from .graph_figures import draw_graph
from .graph_layers import (  # noqa: F401  (GraphLayer, AdjacencyMask, dense_adjacency: importable from here)
    ACTIVATIONS,
    AdjacencyMask,
    GraphEncoder,
    GraphLayer,
    Layer,
    ResidualGraphEncoder,
    dense_adjacency,
)

SPARSE_INPUT_DENSITY = 0.1  # below this fraction of non-zero features, input dropout runs on the non-zeros
Metric = Literal["auto", "accuracy", "roc_auc"]
MONITORS = {"accuracy": "val/acc", "roc_auc": "val/roc_auc"}


class DenseGraphStep(nn.Module):
    """``NodeClassifier`` on tensors only, ``(x (N, F), adjacency (N, N) bool) -> logits (N, classes)``: what
    ``attnlab export`` traces for the graph app (attention layers without edge features)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        return self.model(x, AdjacencyMask(adjacency))


class NodeClassifier(AttnLabModule):
    """Classify every node of a graph; loss and accuracy count only the stage's nodes.

    The resolved sizes are saved with the checkpoint. On small labelled sets (Cora: 140 training nodes) the GAT
    shape (no input_proj, output attention) generalises clearly better. Fine-tuning: see ``AttnLabModule``; on a
    graph with other features or classes the input projection and the head are new, the hidden layers load.

    Args:
        in_channels: node features per node; None reads ``num_features`` from the datamodule at setup
        num_classes: classes; None reads them from the datamodule
        hidden: width of the hidden graph layers
        depth: hidden graph layers (0 with output attention: one layer straight to the classes)
        num_heads: attention heads per hidden layer (hidden must be a multiple)
        layer: attention (core.MultiHeadSelfAttention on an EdgeMask) or a PyG baseline gat|gcn|transformer_conv
        score: additive (with leaky_relu: scores like GATv2) or dot (like a transformer)
        additive_activation: the activation inside the additive score
        input_dropout: dropout on the raw node features
        dropout: dropout before every layer after the first and before the head
        attn_dropout: dropout on the attention weights
        activation: after each graph layer
        norm: after each graph layer (none, layer or batch)
        residual: add each layer's input where the width is kept
        add_self_loops: every node also attends to itself (one self loop per node)
        edge_features: use the graph's edge_attr (a per-head score bias in attention; edge_dim of GAT/TransformerConv)
        edge_dim: features per edge; None reads it from the datamodule when edge_features is on
        label_smoothing: of the training cross-entropy
        input_proj: a Linear in_channels -> hidden first (off: the first graph layer reads the raw features, as GAT)
        output: linear (a Linear head) or attention (one more graph layer to the classes, heads averaged: GAT's)
        output_heads: heads of the attention output layer
        mix_heads: W^o after each attention layer (transformer) or concatenated heads (GAT)
        shared_qkv: one projection as queries, keys and values (see core.MultiHeadSelfAttention)
        init: glorot initialises the attention projections as GAT does, default keeps PyTorch's
        blocks: plain (h = act(norm(h + layer(h))), GAT's shape) or residual (pre-norm residual blocks of attention
            and a feed-forward part with a final norm: the heterophilous benchmark's GT / GAT shape; needs
            input_proj and output linear)
        separate_self: the "-sep" variant (blocks residual): no self loops in the softmax, the node's own state and
            the attention over its neighbours concatenated and mixed by a Linear (GT-sep / GAT-sep)
        ffn_multiplier: width of the feed-forward part of a residual block, in multiples of hidden
        metric: what is reported and monitored: accuracy (val/acc), roc_auc (val/roc_auc, two classes: the
            probability of class 1 ranks the nodes; accuracy is reported too) or auto (roc_auc for two classes,
            else accuracy)
    """

    monitor = "val/acc"
    monitor_mode = "max"
    app_name = "graph"

    def __init__(
        self,
        in_channels: int | None = None,
        num_classes: int | None = None,
        hidden: int = 64,
        depth: int = 2,
        num_heads: int = 8,
        layer: Layer = "attention",
        score: Literal["dot", "additive"] = "additive",
        additive_activation: Literal["tanh", "leaky_relu"] = "leaky_relu",
        input_dropout: float = 0.6,
        dropout: float = 0.6,
        attn_dropout: float = 0.6,
        activation: Literal["elu", "relu", "gelu"] = "elu",
        norm: Literal["none", "layer", "batch"] = "none",
        residual: bool = True,
        add_self_loops: bool = True,
        edge_features: bool = False,
        edge_dim: int | None = None,
        label_smoothing: float = 0.0,
        input_proj: bool = True,
        output: Literal["linear", "attention"] = "linear",
        output_heads: int = 1,
        mix_heads: bool = True,
        shared_qkv: bool = False,
        init: Literal["default", "glorot"] = "default",
        blocks: Literal["plain", "residual"] = "plain",
        separate_self: bool = False,
        ffn_multiplier: float = 1.0,
        metric: Metric = "auto",
        init_from: str | None = None,
        freeze: str | list[str] | None = None,
        head_lr_scale: float = 1.0,
        backbone_lr_scale: float = 1.0,
        optim: OptimConfig | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(optim=optim, compile=compile, init_from=init_from, freeze=freeze,
                         head_lr_scale=head_lr_scale, backbone_lr_scale=backbone_lr_scale)
        self.save_hyperparameters()
        if output not in ("linear", "attention"):
            raise ValueError(f"model.output must be 'linear' or 'attention', got {output!r}")
        if init not in ("default", "glorot"):
            raise ValueError(f"model.init must be 'default' or 'glorot', got {init!r}")
        if output_heads < 1:
            raise ValueError(f"model.output_heads must be >= 1, got {output_heads}")
        if layer not in ("attention", "gat", "gcn", "transformer_conv"):
            raise ValueError(f"model.layer must be one of attention, gat, gcn, transformer_conv, got {layer!r}")
        if hidden % num_heads:
            raise ValueError(f"model.hidden ({hidden}) must be a multiple of model.num_heads ({num_heads})")
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if norm not in ("none", "layer", "batch"):
            raise ValueError(f"model.norm must be none, layer or batch, got {norm!r}")
        if depth < 1 and output == "linear":
            raise ValueError(f"model.depth must be >= 1 (with output: attention, >= 0), got {depth}")
        if blocks not in ("plain", "residual"):
            raise ConfigError(f"model.blocks must be plain or residual, got {blocks!r}")
        if blocks == "residual" and (not input_proj or output != "linear" or depth < 1):
            raise ConfigError(f"model.blocks=residual keeps the width through every block: it needs "
                              f"input_proj: true, output: linear and depth >= 1, got input_proj={input_proj}, "
                              f"output={output}, depth={depth}")
        if separate_self and blocks != "residual":
            raise ConfigError("model.separate_self (the -sep variant) is a residual block's mixing step: set "
                              "model.blocks: residual")
        if metric not in ("auto", *MONITORS):
            raise ConfigError(f"model.metric must be auto, accuracy or roc_auc, got {metric!r}")
        if metric == "roc_auc" and num_classes not in (None, 2):
            raise ConfigError(f"model.metric=roc_auc ranks nodes by the probability of class 1 and needs two "
                              f"classes, got num_classes={num_classes}; use accuracy")
        self.monitor = self._monitor()
        self._pattern_cache: tuple[Tensor, Tensor | None, EdgeMask] | None = None
        self._nonzero_cache: tuple[Tensor, tuple[Tensor, Tensor] | None] | None = None
        self.built = False
        if in_channels is not None and num_classes is not None and (edge_dim is not None or not edge_features):
            self._build()

    def _metric(self) -> str | None:
        """accuracy / roc_auc as configured, auto resolved by the class count (None while it is unknown)."""
        metric, classes = self.hparams.metric, self.hparams.num_classes
        if metric == "auto":
            return None if classes is None else "roc_auc" if classes == 2 else "accuracy"
        return metric

    def _monitor(self) -> str:
        return MONITORS[self._metric() or "accuracy"]

    def resolve_monitor(self, datamodule: object) -> None:
        """Settle ``monitor`` before the CLI builds its checkpoint callback: with ``metric: auto`` and no class
        count yet, read it from the datamodule (the graph loads once; setup reuses it)."""
        if self.hparams.metric == "auto" and self.hparams.num_classes is None and hasattr(datamodule, "num_classes"):
            classes = datamodule.num_classes
            self.monitor = MONITORS["roc_auc" if classes == 2 else "accuracy"]

    # ------------------------------------------------------------------ model
    def _build(self) -> None:
        h = self.hparams
        edge_dim = h.edge_dim if h.edge_features else None
        self.input_drop = nn.Dropout(h.input_dropout)
        self.input_proj = nn.Linear(h.in_channels, h.hidden) if h.input_proj else None
        width = h.hidden if h.input_proj else h.in_channels
        self.encoder = None
        if h.blocks == "residual":
            self.encoder = ResidualGraphEncoder(h.hidden, h.depth, h.layer, h.num_heads, h.score,
                                                h.additive_activation, h.dropout, h.attn_dropout, h.activation,
                                                h.norm, h.separate_self, h.ffn_multiplier, edge_dim,
                                                mix_heads=h.mix_heads, shared_qkv=h.shared_qkv, init=h.init)
        elif h.depth:
            self.encoder = GraphEncoder(width, h.hidden, h.depth, h.layer, h.num_heads, h.score,
                                        h.additive_activation, h.dropout, h.attn_dropout, h.activation, h.norm,
                                        h.residual, edge_dim, mix_heads=h.mix_heads, shared_qkv=h.shared_qkv,
                                        init=h.init)
            width = h.hidden
        plain = h.blocks == "plain" and (self.encoder is not None or h.input_proj)
        self.head_drop = nn.Dropout(h.dropout) if plain else nn.Identity()  # residual blocks end in a norm
        if h.output == "linear":
            self.head = nn.Linear(width, h.num_classes)
        else:
            self.head = GraphLayer(h.layer, width, h.num_classes, h.output_heads, h.score, h.additive_activation,
                                   h.attn_dropout, edge_dim, concat=False, shared_qkv=h.shared_qkv, init=h.init)
        metrics = {"acc": MulticlassAccuracy(h.num_classes, average="micro")}
        if self._metric() == "roc_auc":
            if h.num_classes != 2:
                raise ConfigError(f"model.metric=roc_auc needs two classes, the data has {h.num_classes}; use "
                                  "accuracy or auto")
            # One-vs-rest on softmax probabilities: with two classes both curves equal the binary ROC of p(class 1).
            metrics["roc_auc"] = MulticlassAUROC(2, average="macro")
        self.setup_metrics(metrics)
        self.monitor = self._monitor()
        self.built = True

    def setup(self, stage: str) -> None:
        """Read missing sizes from the datamodule, check given ones against it, then build."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and all(hasattr(dm, k) for k in ("num_features", "num_classes")):
            data_sizes = {"in_channels": dm.num_features, "num_classes": dm.num_classes}
            if self.hparams.edge_features:
                if getattr(dm, "edge_dim", None) is None:
                    raise ValueError("model.edge_features=true but the graph has no edge_attr "
                                     f"({type(dm).__name__}); set edge_features: false or use data with edges "
                                     "features (e.g. data.csbm.edge_features: 4)")
                data_sizes["edge_dim"] = dm.edge_dim
            for key, value in data_sizes.items():
                given = self.hparams[key]
                if given is None:
                    self.hparams[key] = value
                elif given != value and stage != "fit":  # the size came with the checkpoint: other data
                    raise CheckpointError(f"the checkpoint's model has {key}={given} but the data "
                                          f"({type(dm).__name__}) has {value}",
                                          expected="the data set the checkpoint was trained on",
                                          fix="Evaluate it with its training config's data, or fine-tune with "
                                              "model.init_from on this data.")
                elif given != value:
                    raise ValueError(f"model.{key}={given} but the data ({type(dm).__name__}) has {value}; "
                                     f"set model.{key}: {value} or null (read from the data)")
        if not self.built:
            missing = [k for k in ("in_channels", "num_classes") if self.hparams[k] is None]
            if self.hparams.edge_features and self.hparams.edge_dim is None:
                missing.append("edge_dim")
            if missing:
                raise ValueError(f"NodeClassifier: {', '.join(missing)} unknown; set them in model or use a "
                                 f"datamodule that reports num_features / num_classes / edge_dim")
            self._build()

    @property
    def self_loops(self) -> bool:
        """Whether a node attends to itself: add_self_loops, except in the -sep variant (neighbours only)."""
        return bool(self.hparams.add_self_loops and not self.hparams.separate_self)

    def pattern(self, data: Data) -> EdgeMask:
        """The EdgeMask of this batch's graph; cached while the same edge tensors come back (full batch)."""
        edge_attr = getattr(data, "edge_attr", None) if self.hparams.edge_features else None
        cached = self._pattern_cache
        if cached is not None and cached[0] is data.edge_index and cached[1] is edge_attr:
            return cached[2]
        if edge_attr is not None:
            edge_attr = edge_attr.float()
        pattern = EdgeMask(data.edge_index, add_self_loops=self.self_loops, edge_attr=edge_attr)
        self._pattern_cache = (data.edge_index, getattr(data, "edge_attr", None) if self.hparams.edge_features
                               else None, pattern)
        return pattern

    def forward(self, x: Tensor, pattern: EdgeMask, return_weights: bool = False) -> Tensor | tuple[Tensor, list]:
        """(N, in_channels) features on the graph of ``pattern`` -> (N, num_classes) logits; with ``return_weights``
        also the (E', heads) attention weights of every attention layer over ``pattern.processed(N)``."""
        if x.dim() != 2 or x.size(1) != self.hparams.in_channels:
            raise ValueError(f"NodeClassifier expects x of shape (num_nodes, {self.hparams.in_channels}), "
                             f"got {tuple(x.shape)}")
        h = self._project(x)
        weights: list[Tensor] = []
        if self.encoder is not None:
            h = self.encoder(h, pattern, return_weights)
            if return_weights:
                h, weights = h
        h = self.head_drop(h)
        if isinstance(self.head, nn.Linear):
            logits = self.head(h)
        else:
            logits = self.head(h, pattern, return_weights)
            if return_weights:
                logits, last = logits
                weights.append(last)
        return (logits, weights) if return_weights else logits

    def _project(self, x: Tensor) -> Tensor:
        """input_proj(input_drop(x)); for mostly-zero features (bag of words) dropout and product run on the
        non-zeros only: the same random function, without drawing a Bernoulli per zero entry."""
        if self.input_proj is None:
            return self.input_drop(x)
        p = self.input_drop.p
        if not (self.training and p > 0):
            return self.input_proj(x)
        cached = self._nonzero_cache
        if cached is None or cached[0] is not x:
            nonzero = x.nonzero().t()
            sparse = nonzero.size(1) < SPARSE_INPUT_DENSITY * x.numel()
            cached = self._nonzero_cache = (x, (nonzero, x[nonzero[0], nonzero[1]]) if sparse else None)
        if cached[1] is None:
            return self.input_proj(self.input_drop(x))
        index, values = cached[1]
        keep = torch.rand(values.shape, device=values.device) >= p
        dropped = torch.sparse_coo_tensor(index[:, keep], values[keep] / (1.0 - p), x.shape, is_coalesced=True,
                                          check_invariants=False)
        return torch.sparse.mm(dropped, self.input_proj.weight.t()) + self.input_proj.bias

    # ------------------------------------------------------------------ steps
    @staticmethod
    def counted(data: Data, stage: str) -> Tensor:
        """Indices of the nodes that count: a NeighborLoader batch's seeds, else the stage's mask."""
        if "n_id" in data and hasattr(data, "batch_size"):
            return torch.arange(data.batch_size, device=data.x.device)
        return getattr(data, f"{stage}_mask").nonzero().squeeze(1)

    def shared_step(self, data: Data, stage: str) -> Tensor:
        logits = self(data.x, self.pattern(data))
        idx = self.counted(data, stage)
        logits, target = logits[idx], data.y[idx]
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing if stage == "train"
                               else 0.0)
        self.log_step(stage, loss, logits.detach(), target, batch_size=idx.numel())  # scores: AUC ranks them
        return loss

    def predict_step(self, batch: Data, batch_idx: int) -> dict[str, Tensor]:
        """Per node: its id in the full graph, the predicted class and that class's probability."""
        probs = self(batch.x, self.pattern(batch)).softmax(-1)
        if "n_id" in batch and hasattr(batch, "batch_size"):
            probs, node_id = probs[: batch.batch_size], batch.n_id[: batch.batch_size]
        else:
            node_id = batch.n_id if "n_id" in batch else torch.arange(probs.size(0), device=probs.device)
        real = getattr(self.datamodule(), "real_nodes", None)  # a virtual node (data.virtual_node) is not predicted
        if real is not None:
            keep = node_id < real
            probs, node_id = probs[keep], node_id[keep]
        prob, pred = probs.max(-1)
        return {"node_id": node_id.cpu(), "pred": pred.cpu(), "prob": prob.cpu()}

    def format_predictions(self, outputs: list[dict[str, Tensor]]) -> list[tuple[Path, str]]:
        """``node_id,class,prob`` (one row per node, sorted by id) to ``data.predict_output`` (default: the predict
        run folder's ``predictions.csv``). A graph read from CSV (``data.source: csv``) is written back in the user's
        terms: node ids as in ``data.nodes`` and class names as in its label column."""
        merged = {k: torch.cat([p[k] for p in outputs]) for k in ("node_id", "pred", "prob")}
        order = merged["node_id"].argsort()
        rows = zip(*(merged[k][order].tolist() for k in ("node_id", "pred", "prob")), strict=True)
        dm = self.datamodule()
        ids, names = getattr(dm, "node_ids", None), getattr(dm, "class_names", None)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["node_id", "class", "prob"])
        writer.writerows([ids[n] if ids else n, names[c] if names and c < len(names) else c, f"{p:.6f}"]
                         for n, c, p in rows)
        text = out.getvalue()
        return [(self.prediction_path(getattr(self.datamodule(), "predict_output", None), "predictions.csv"), text)]

    def explain_figures(self, batch: Data, out: Path, example: int) -> list[Path]:
        return draw_graph(self, self.datamodule(), batch, out, example)

    def predict_items(self, items: list[Data]) -> list[list[int]]:
        """Graphs (``Data`` with x and edge_index, features prepared as in training) -> each node's class id."""
        return [self(g.x.to(self.device), EdgeMask(g.edge_index.to(self.device), self.self_loops))
                .argmax(-1).tolist() for g in items]

    def export_example(self, batch: int = 2, length: int = 12) -> ExportSpec:
        """``DenseGraphStep``: features and a dense adjacency of a random graph of ``length`` nodes (dynamic)."""
        h = self.hparams
        if h.layer != "attention" or h.edge_features:
            raise ValueError("export: the graph app exports attention layers without edge features (model.layer: "
                             f"attention, model.edge_features: false), got layer={h.layer}, "
                             f"edge_features={h.edge_features}")
        generator = torch.Generator().manual_seed(length)
        x = torch.randn(length, h.in_channels, generator=generator)
        edges = torch.randint(0, length, (2, 3 * length), generator=generator)
        adjacency = dense_adjacency(edges, length, self.self_loops)
        notes = {"inputs": "x (N, in_channels) float node features (normalised as data.normalize); adjacency (N, N) "
                           "bool, [i, j] True when node i attends to node j (edge j -> i), self loops "
                           f"{'included' if self.self_loops else 'as the graph has them'}: "
                           "apps.graph.dense_adjacency(edge_index, N)", "outputs": "logits (N, num_classes)"}
        dims = {"x": {0: Dim.DYNAMIC}, "adjacency": {0: Dim.DYNAMIC, 1: Dim.DYNAMIC}}
        return ExportSpec(DenseGraphStep(self), (x, adjacency), dims, notes)
