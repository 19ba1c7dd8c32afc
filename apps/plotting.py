"""Drawing helpers that every app's pictures share (``attnlab explain``): matplotlib into PNG files.

Each app draws its own figures (``<app>/figures.py``, called from the app's ``explain_figures`` hook); what they
have in common lives here: atomic PNG saving, token x token heatmaps with words on the axes, position tables,
the learned relative-position vectors, and how to choose a sentence worth drawing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from core import sinusoidal_positions  # noqa: E402

from .runs import save_atomic  # noqa: E402

DPI = 100  # a few hundred KB per picture at most
MIN_TOKENS = 12  # shortest sentence worth a token x token picture
MAX_TOKENS = 24  # longest sentence drawn with readable words on both axes


def save(fig: plt.Figure, path: Path) -> Path:
    """Save ``fig`` as PNG atomically (``apps.runs.save_atomic``: readable like any file), then close it."""
    try:
        return save_atomic(path, lambda tmp: fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols



def token_heatmaps(weights: list[Tensor], keys: list[str], queries: list[str], title: str, stem: Path) -> list[Path]:
    """One figure per layer: a (queries x keys) heatmap per head, words on both axes; plus every layer's mean
    over heads side by side (``<stem>_layers.png``). ``weights``: per layer (heads, n, n) of one sentence."""
    written = []
    n = len(keys)
    size = max(2.6, 0.2 * n + 1.0)
    for layer, w in enumerate(weights):
        heads = w.size(0)
        rows, cols = grid(heads)
        fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
        vmax = float(w.max())
        for h in range(rows * cols):
            ax = axes[h // cols][h % cols]
            if h >= heads:
                ax.axis("off")
                continue
            image = ax.imshow(w[h].numpy(), cmap="viridis", vmin=0.0, vmax=vmax)
            ax.set_title(f"head {h + 1}", fontsize=9)
            word_axes(ax, keys, queries if h % cols == 0 else None)
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="attention weight α'(i, j)")
        fig.suptitle(f"{title} — layer {layer + 1} of {len(weights)}: row = query word, column = key word "
                     f"(weight α'(i, j), rows sum to 1)", fontsize=10)
        written.append(save(fig, stem.with_name(f"{stem.name}_layer{layer + 1}.png")))
    fig, axes = plt.subplots(1, len(weights), figsize=(size * len(weights), size), squeeze=False)
    vmax = max(float(w.mean(0).max()) for w in weights)
    for layer, w in enumerate(weights):
        ax = axes[0][layer]
        image = ax.imshow(w.mean(0).numpy(), cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_title(f"layer {layer + 1} (mean of {w.size(0)} heads)", fontsize=9)
        word_axes(ax, keys, queries if layer == 0 else None)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="attention weight")
    fig.suptitle(f"{title}: attention of every layer", fontsize=10)
    written.append(save(fig, stem.with_name(f"{stem.name}_layers.png")))
    return written



def word_axes(ax: plt.Axes, keys: list[str], queries: list[str] | None) -> None:
    n = len(keys)
    fontsize = 8 if n <= 16 else 6
    ax.set_xticks(range(n), keys, rotation=90, fontsize=fontsize)
    if queries is None:
        ax.set_yticks(range(n), [""] * n)
    else:
        ax.set_yticks(range(n), queries, fontsize=fontsize)



def position_matrix(table: Tensor, xlabel: str, title: str, path: Path, xticks: list[int] | None = None) -> Path:
    """(positions, dims) -> picture with dimensions on the y axis and positions on the x axis."""
    values = table.float().T.numpy()
    fig, ax = plt.subplots(figsize=(min(12.0, 2.0 + 0.09 * values.shape[1]), min(8.0, 1.5 + 0.05 * values.shape[0])))
    limit = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("dimension")
    if xticks is not None:
        step = max(1, len(xticks) // 12)
        ax.set_xticks(range(0, len(xticks), step), [str(t) for t in xticks[::step]])
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03)
    return save(fig, path)



def relative_tables(encoder: Any, path: Path, title: str) -> list[Path]:
    """The learned relative-position vectors r_d of every layer (Shaw et al.), dimensions x distance d."""
    tables = [b.attn.relative.table.detach().cpu() for b in encoder.blocks if b.attn.relative is not None]
    if not tables:
        return []
    k = (tables[0].size(0) - 1) // 2
    fig, axes = plt.subplots(1, len(tables), figsize=(3.2 * len(tables) + 0.8, 3.4), squeeze=False,
                             layout="constrained")
    limit = max(float(t.abs().max()) for t in tables) or 1.0  # one colour scale for every layer
    for layer, table in enumerate(tables):
        ax = axes[0][layer]
        values = table.T.numpy()
        image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                          extent=(-k - 0.5, k + 0.5, values.shape[0], 0), interpolation="nearest")
        ax.set_xlabel("distance j − i (key − query)")
        ax.set_title(f"layer {layer + 1}", fontsize=9)
        if layer == 0:
            ax.set_ylabel("dimension (per head)")
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01, label="value")
    fig.suptitle(f"{title}: learned relative positions r_(j−i), one vector per distance, clipped at ±{k} "
                 "(trained weights)", fontsize=10)
    return [save(fig, path)]



def sinusoid_picture(dim: int, length: int, path: Path) -> Path:
    """The sinusoidal table of "Attention Is All You Need" as the lecture draws it: dimensions x positions, the sin
    dimensions (even) above the cos dimensions (odd), each from the fastest to the slowest frequency."""
    table = sinusoidal_positions(length, dim)
    reordered = torch.cat([table[:, 0::2], table[:, 1::2]], dim=1)
    return position_matrix(reordered, "position", f"sinusoidal positional encoding e_pos ({dim} dimensions x {length} "
                           f"positions; rows 0–{dim // 2 - 1}: sin, rows {dim // 2}–{dim - 1}: cos)", path)



def pick(lengths: list[int], example: int, lo: int, hi: int) -> int:
    """The ``example``-th item whose length is in [lo, hi], else the longest one not above ``hi``."""
    fitting = [i for i, n in enumerate(lengths) if lo <= n <= hi]
    if fitting:
        return fitting[example % len(fitting)]
    shorter = [i for i, n in enumerate(lengths) if n <= hi] or list(range(len(lengths)))
    return max(shorter, key=lambda i: lengths[i] if lengths[i] <= hi else -lengths[i])




def first_batch_with_length(loader: Any, lo: int = MIN_TOKENS, hi: int = MAX_TOKENS, max_batches: int = 1000) -> Any:
    """The first batch holding a sequence of ``lo``-``hi`` tokens (evaluation loaders sort by length, so the first
    batch of a treebank holds one-word sentences); the first batch when none does within ``max_batches``.
    A batch is a dict with ``mask`` or a tuple whose second item is the padding mask."""
    first = None
    for count, batch in enumerate(loader):
        if first is None:
            first = batch
        mask = batch["mask"] if isinstance(batch, dict) else batch[1]
        if any(lo <= n <= hi for n in mask.sum(1).tolist()) or count + 1 >= max_batches:
            return batch
    if first is None:
        raise ValueError("explain: the validation loader is empty")
    return first
