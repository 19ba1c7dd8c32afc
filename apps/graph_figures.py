"""Pictures of the graph attention (``attnlab explain``): a node's attention weights over its in-neighbours (and
itself) drawn on its neighbourhood, per layer; the same weights per head.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize

from core.errors import ConfigError

from .plotting import save


def draw_graph(model: Any, dm: Any, data: Any, out: Path, example: int) -> list[Path]:
    """One node's attention over its in-neighbours and itself, drawn on its neighbourhood, per layer."""
    if model.hparams.layer != "attention":
        raise ValueError(f"explain: model.layer is {model.hparams.layer}, a PyG baseline; attention weights are "
                         "drawn for model.layer: attention")
    pattern = model.pattern(data)
    logits, weights = model(data.x, pattern, return_weights=True)
    num_nodes = data.x.size(0)
    edges = pattern.processed(num_nodes).cpu()  # (2, E'): source j -> target i (i attends to j)
    src, dst = edges[0], edges[1]
    degree = torch.bincount(dst[src != dst], minlength=num_nodes)
    counted = getattr(data, "val_mask", None)
    pool = torch.arange(num_nodes) if counted is None else counted.cpu().nonzero().squeeze(1)
    candidates = [int(n) for n in pool if 4 <= int(degree[n]) <= 9] or [int(pool[degree[pool].argmax()])]
    # the nodes whose last-layer weights differ most from uniform first (on citation graphs most are near uniform)
    last = weights[-1].float().cpu().mean(1)
    spread = {n: float(last[dst == n].max() - last[dst == n].min()) for n in candidates}
    candidates.sort(key=lambda n: -spread[n])
    if not 0 <= example < len(candidates):  # it used to wrap around silently
        raise ConfigError(f"explain --example {example}", expected=f"an index 0..{len(candidates) - 1} into the "
                          f"{len(candidates)} validation nodes worth drawing (4-9 neighbours)",
                          fix="Pass --example within that range.")
    node = candidates[example]
    incoming = (dst == node).nonzero().squeeze(1)
    neighbours = src[incoming].tolist()
    preds = logits.argmax(-1).cpu()
    truth = data.y.cpu()
    layers = [w.float().cpu()[incoming] for w in weights]  # (k, heads) per layer, over the incoming edges
    uniform = 1.0 / len(neighbours)

    others = [n for n in neighbours if n != node]
    angle = np.linspace(0, 2 * np.pi, len(others), endpoint=False) + np.pi / 2
    pos = {node: (0.0, 0.0), **{n: (math.cos(a), math.sin(a)) for n, a in zip(others, angle, strict=True)}}
    among = [(int(s), int(d)) for s, d in zip(src.tolist(), dst.tolist(), strict=True)
             if s != d and s in pos and d in pos and d != node and s != node]
    colours = plt.get_cmap("tab10")
    cmap = plt.get_cmap("coolwarm")  # blue below the uniform share 1/k, red above
    fig, axes = plt.subplots(1, len(layers), figsize=(5.2 * len(layers), 5.4), squeeze=False)
    for layer, w in enumerate(layers):
        ax = axes[0][layer]
        mean = w.mean(1)
        for s, d in among:
            ax.plot(*zip(pos[s], pos[d], strict=True), color="0.85", lw=0.8, zorder=1)
        for n, value in zip(neighbours, mean.tolist(), strict=True):
            if n == node:
                ax.text(0, -0.26, f"self {value:.2f}", ha="center", va="center", fontsize=8,
                        bbox={"boxstyle": "round", "fc": cmap(min(1.0, value / (2 * uniform))), "ec": "0.5"})
                continue
            x, y = pos[n]
            ax.annotate("", xy=(0.12 * x, 0.12 * y), xytext=(0.88 * x, 0.88 * y), zorder=2,
                        arrowprops={"arrowstyle": "-|>", "lw": 1 + 12 * value,
                                    "color": cmap(min(1.0, value / (2 * uniform)))})
            ax.text(0.5 * x + 0.06, 0.5 * y + 0.06, f"{value:.2f}", fontsize=8)
        for n, (x, y) in pos.items():
            ax.scatter([x], [y], s=700 if n == node else 520, color=colours(int(truth[n]) % 10), zorder=3,
                       edgecolors="black" if preds[n] == truth[n] else "red", linewidths=1.5)
            ax.text(x, y, str(n), ha="center", va="center", fontsize=6.5, color="white", zorder=4)
        ax.set_xlim(-1.35, 1.35)
        ax.set_ylim(-1.35, 1.35)
        ax.set_aspect("equal")
        ax.axis("off")
        heads = f"mean of {w.size(1)} heads" if w.size(1) > 1 else "1 head"
        ax.set_title(f"layer {layer + 1}: α'(node {node}, j), {heads}", fontsize=10)
    scale = plt.cm.ScalarMappable(Normalize(0.0, 2 * uniform), cmap)
    fig.colorbar(scale, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02,
                 label=f"weight (grey = uniform 1/{len(neighbours)}; full red: {2 * uniform:.2f} or more)")
    shown_classes = sorted({int(truth[n]) for n in pos})
    names = getattr(dm, "class_names", None) if dm is not None else None
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours(c % 10), markersize=9,
                          label=f"class {names[c] if names else c}") for c in shown_classes]
    axes[0][0].legend(handles=handles, loc="lower left", fontsize=8, frameon=False, title="true class",
                      title_fontsize=8)
    fig.suptitle(f"graph: node {node} (in-degree {int(degree[node])}) attends to its in-neighbours and itself\narrow "
                 f"width = weight, colour: red above, blue below the uniform share 1/{len(neighbours)}; "
                 f"node colour = true class, red ring = misclassified", fontsize=10)
    written = [save(fig, out / "graph_neighbours.png")]

    fig, axes = plt.subplots(1, len(layers), figsize=(1.2 + 0.45 * layers[0].size(1) * len(layers) + len(layers),
                                                      1.4 + 0.32 * len(neighbours)), squeeze=False)
    for layer, w in enumerate(layers):
        ax = axes[0][layer]
        image = ax.imshow(w.numpy(), cmap="coolwarm", vmin=0.0, vmax=2 * uniform, aspect="auto")
        for (r, c), value in np.ndenumerate(w.numpy()):
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(w.size(1)), [str(h + 1) for h in range(w.size(1))], fontsize=8)
        ax.set_yticks(range(len(neighbours)), [f"{n}{' (self)' if n == node else ''}" for n in neighbours], fontsize=8)
        ax.set_xlabel("head")
        ax.set_title(f"layer {layer + 1}", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.025, pad=0.02,
                 label=f"weight α'(node, j) (full red: {2 * uniform:.2f} or more)")
    fig.suptitle(f"graph: node {node}'s weights over its in-neighbours j, per head (each column sums to 1; grey = "
                 f"uniform 1/{len(neighbours)})", fontsize=10, y=1.04)
    written.append(save(fig, out / "graph_heads.png"))
    return written

