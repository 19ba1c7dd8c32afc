"""The encoder's options as typed groups: ``EncoderConfig`` ⊃ ``AttentionConfig`` ∋ ``KernelConfig``.

Why groups: an option is declared once, where it belongs, and travels as one object. Before, every layer
(app -> ``Encoder`` -> ``EncoderBlock`` -> ``MultiHeadSelfAttention`` -> kernel) re-declared and forwarded the
same arguments, and an app's signature listed the encoder's options next to its own. Now

* ``KernelConfig`` holds what only the O(L) kernel methods read (``num_features``, ``max_length``,
  ``redraw_interval``); only ``core.attention.make_kernel`` looks inside it;
* ``AttentionConfig`` holds the options of one multi-head self-attention layer (heads, score, positions,
  backend, attention dropout, the kernel);
* ``EncoderConfig`` is an ``AttentionConfig`` plus the encoder's own sizes (``dim``, ``depth``, ``mlp_ratio``,
  ``dropout``, ``drop_path``, ``norm_eps``): flat in YAML, as an app's ``model.init_args.encoder``::

      encoder: {dim: 128, depth: 4, num_heads: 4, position: relative, kernel: {kind: performer}}

Like ``apps.base.OptimConfig``, each validates itself on construction with messages that name the key.
The classes are frozen (an app's default instance is shared, so it must not change) and registered as safe
globals, so hyperparameters holding them load under ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

import torch

from .attend import BACKENDS, Backend

Position = Literal["none", "rotary", "relative"]
Kernel = Literal["softmax", "linear", "performer", "linformer"]
KERNELS = ("softmax", "linear", "performer", "linformer")
POSITIONS = ("none", "rotary", "relative")


@dataclass(frozen=True)
class KernelConfig:
    """Softmax attention or an O(L) approximation that replaces it (see ``core.MultiHeadSelfAttention``).

    ``kind``: "softmax" (exact, through ``core.attend``), "linear" (φ = elu + 1), "performer" (FAVOR+ with
    ``num_features`` random features, redrawn every ``redraw_interval`` training calls, 0 = never) or
    "linformer" (keys/values projected to ``num_features`` rows by learned (num_features, ``max_length``)
    matrices). The three numbers are read only by the kernel that uses them.

    Args:
        kind: softmax (exact), linear (elu + 1 feature map), performer (FAVOR+ random features) or linformer (projected
            keys/values)
        num_features: performer: random features; linformer: rows keys/values are projected to
        max_length: linformer: longest sequence its projections cover (tokens)
        redraw_interval: performer: redraw the random features every this many training calls (0: never)
    """

    kind: Kernel = "softmax"
    num_features: int = 64
    max_length: int = 4096
    redraw_interval: int = 0

    def replace(self, **changes: Any) -> KernelConfig:
        """A copy with ``changes`` (``dataclasses.replace``), validated again."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        if self.kind not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kind!r} (key kernel.kind)")
        if self.num_features < 1 or self.max_length < 1 or self.redraw_interval < 0:
            raise ValueError(f"kernel.num_features ({self.num_features}) and kernel.max_length ({self.max_length}) "
                             f"must be >= 1, kernel.redraw_interval ({self.redraw_interval}) >= 0")


@dataclass(frozen=True, kw_only=True)
class AttentionConfig:
    """Options of one ``core.MultiHeadSelfAttention`` layer (its sizes ``dim`` / ``in_dim`` are arguments).

    ``score``: "dot" (scaled dot product) or "additive" (a · ``additive_activation``(q_i + k_j) per head).
    ``position``: attention-level positions, "rotary" or "relative" (Shaw, distances clipped at
    ``max_relative_distance``); absolute encodings are added to the inputs by the caller.
    ``backend``: how ``core.attend`` computes softmax attention ("auto" picks per pattern and device).
    ``attn_dropout``: on the attention weights (softmax only). ``kernel``: see ``KernelConfig``; a kernel
    method needs score "dot" and no relative positions.

    Args:
        num_heads: attention heads (the width must be a multiple)
        score: dot (scaled dot product) or additive (a . activation(q_i + k_j) per head)
        additive_activation: the activation of the additive score: tanh or leaky_relu
        position: attention-level positions: none, rotary or relative (Shaw; absolute ones are the app's)
        max_relative_distance: position relative: distances are clipped at this many tokens
        backend: how softmax attention is computed: auto (per pattern and device), dense, sdpa, banded, edges, flex,
            sparse, neighborhood
        attn_dropout: dropout on the attention weights (softmax only)
        qkv_bias: bias in the query/key/value projections
        kernel: softmax or an O(L) approximation (KernelConfig: kind, num_features, max_length, redraw_interval)
    """

    key: ClassVar[str] = "attention"  # how error messages name the group

    num_heads: int = 8
    score: Literal["dot", "additive"] = "dot"
    additive_activation: Literal["tanh", "leaky_relu"] = "tanh"
    position: Position = "none"
    max_relative_distance: int = 16
    backend: Backend = "auto"
    attn_dropout: float = 0.0
    qkv_bias: bool = True
    kernel: KernelConfig = field(default_factory=KernelConfig)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (``dataclasses.replace``), validated again: e.g. an app's default encoder
        made smaller, ``SPEECH_ENCODER.replace(dim=32, depth=1)``."""
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        k = self.key
        if not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise ValueError(f"{k}.num_heads must be a positive int, got {self.num_heads!r}")
        if self.score not in ("dot", "additive"):
            raise ValueError(f"score must be 'dot' or 'additive', got {self.score!r} (key {k}.score)")
        if self.additive_activation not in ("tanh", "leaky_relu"):
            raise ValueError(f"{k}.additive_activation must be 'tanh' or 'leaky_relu', got "
                             f"{self.additive_activation!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be 'none', 'rotary' or 'relative', got {self.position!r} "
                             f"(key {k}.position)")
        if self.max_relative_distance < 1:
            raise ValueError(f"{k}.max_relative_distance must be >= 1, got {self.max_relative_distance}")
        if self.backend not in BACKENDS:
            raise ValueError(f"{k}.backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0.0 <= self.attn_dropout < 1.0:
            raise ValueError(f"{k}.attn_dropout must be in [0, 1), got {self.attn_dropout}")
        if not isinstance(self.kernel, KernelConfig):
            raise ValueError(f"{k}.kernel must be a KernelConfig, got {type(self.kernel).__name__}")
        if self.kernel.kind != "softmax" and (self.score != "dot" or self.position == "relative"):
            raise ValueError(f"kernel={self.kernel.kind!r} needs score='dot' and no relative positions "
                             f"(got score={self.score!r}, position={self.position!r}; keys {k}.kernel.kind, "
                             f"{k}.score, {k}.position)")


@dataclass(frozen=True, kw_only=True)
class EncoderConfig(AttentionConfig):
    """A ``core.Encoder``: ``depth`` pre-norm blocks of width ``dim``, each attention (the inherited
    ``AttentionConfig`` options) + an MLP of ``mlp_ratio · dim`` hidden units.

    ``dropout``: after the attention's output projection and in the MLP (apps also use it on their inputs
    and heads). ``drop_path``: stochastic depth of the last block, growing linearly from 0. ``norm_eps``: of
    every LayerNorm (torchvision's ViT uses 1e-6). In an app's config this group is ``model.encoder``.

    Args:
        dim: width of every block (a multiple of num_heads)
        depth: encoder blocks
        mlp_ratio: hidden units of each block's MLP per unit of dim
        dropout: dropout after the attention's output projection and in the MLP
        drop_path: stochastic depth of the last block (rising linearly from 0 over the blocks)
        norm_eps: epsilon of every LayerNorm
    """

    key: ClassVar[str] = "model.encoder"

    dim: int
    depth: int
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    drop_path: float = 0.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.key
        if not isinstance(self.dim, int) or self.dim < 1 or self.dim % self.num_heads:
            raise ValueError(f"{k}.dim ({self.dim}) must be a positive multiple of {k}.num_heads ({self.num_heads})")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"Encoder depth must be >= 1, got {self.depth} (key {k}.depth)")
        if self.mlp_ratio <= 0:
            raise ValueError(f"{k}.mlp_ratio must be > 0, got {self.mlp_ratio}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"{k}.dropout ({self.dropout}) and {k}.drop_path ({self.drop_path}) must be in [0, 1)")
        if self.norm_eps <= 0:
            raise ValueError(f"{k}.norm_eps must be > 0, got {self.norm_eps}")


# Hyperparameters of apps built in Python hold these objects; allow them under torch.load's weights_only.
torch.serialization.add_safe_globals([KernelConfig, AttentionConfig, EncoderConfig])
