"""Pictures of the ViT (``attnlab explain``): attention rollout (``core.attention_rollout``) over the patches of a
few validation images, one per class; the position table (dimensions x patches) and how similar each patch's
position vector is to every other's; for a pattern narrower than Full, its receptive fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import Normalize
from torch import Tensor

from core import attention_rollout

from .plotting import save

VISION_IMAGES = 8  # images drawn with their attention rollout


def one_image_per_class(loader: Any, max_batches: int = 1000) -> tuple[Tensor, Tensor]:
    """(images, labels): the first image of each class, in class order, up to ``VISION_IMAGES`` classes; then, if
    there are fewer classes than that, more images in loader order."""
    chosen: dict[int, tuple[Tensor, Tensor]] = {}
    extra: list[tuple[Tensor, Tensor]] = []
    for count, (images, labels) in enumerate(loader):
        for image, label in zip(images, labels, strict=True):
            key = int(label)
            if key not in chosen and len(chosen) < VISION_IMAGES:
                chosen[key] = (image, label)
            elif len(extra) < VISION_IMAGES:
                extra.append((image, label))
        if len(chosen) >= VISION_IMAGES or count + 1 >= max_batches:
            break
    if not chosen:
        raise ValueError("explain: the validation loader is empty")
    items = [chosen[k] for k in sorted(chosen)] + extra
    items = items[:VISION_IMAGES]
    return torch.stack([i for i, _ in items]), torch.stack([t for _, t in items])



def draw_vision(model: Any, dm: Any, batch: tuple[Tensor, Tensor], out: Path, example: int) -> list[Path]:
    """Attention rollout over the patches of up to 8 validation images, and the position table."""
    net = model.net
    images, labels = batch
    count = min(VISION_IMAGES, images.size(0))
    sel = (torch.arange(count, device=images.device) + example) % images.size(0)
    logits, weights = net(images[sel], return_weights=True)
    rollout = attention_rollout(weights)  # (n, T, T)
    p = net.num_prefix
    relevance = rollout[:, 0, p:] if net.pool == "cls" else rollout[:, p:, p:].mean(1)
    relevance = relevance.reshape(count, net.grid, net.grid).float().cpu()
    relevance = relevance / relevance.flatten(1).max(1).values.clamp(min=1e-12)[:, None, None]  # max 1 per image
    stats = (model.stats or getattr(dm, "stats", None) or {})
    classes = stats.get("classes") or [str(c) for c in range(logits.size(-1))]
    mean = torch.tensor(stats.get("mean", [0.0])).view(-1, 1, 1)
    std = torch.tensor(stats.get("std", [1.0])).view(-1, 1, 1)
    shown = (images[sel].float().cpu() * std + mean).clamp(0, 1)
    preds = logits.argmax(-1).tolist()

    fig, axes = plt.subplots(2, count, figsize=(1.9 * count, 4.4), squeeze=False)
    for k in range(count):
        picture = shown[k].permute(1, 2, 0).numpy()
        cmap = "gray" if picture.shape[-1] == 1 else None
        picture = picture[..., 0] if picture.shape[-1] == 1 else picture
        axes[0][k].imshow(picture, cmap=cmap, vmin=0, vmax=1)
        truth = classes[int(labels[sel[k]])] if int(labels[sel[k]]) >= 0 else "?"
        axes[0][k].set_title(f"true {truth}\npred {classes[preds[k]]}", fontsize=8)
        axes[1][k].imshow(picture, cmap=cmap, vmin=0, vmax=1)
        size = net.image_size
        heat = axes[1][k].imshow(relevance[k].numpy(), cmap="inferno", alpha=0.7, vmin=0.0, vmax=1.0,
                                 extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="nearest")
        for ax in (axes[0][k], axes[1][k]):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_ylabel("input", fontsize=9)
    axes[1][0].set_ylabel("rollout", fontsize=9)
    fig.colorbar(heat, ax=axes[1].tolist(), fraction=0.015, pad=0.01, label="relevance\n(max 1 per image)")
    reader = "the class token" if net.pool == "cls" else "the mean of the patch tokens"
    fig.suptitle(f"vision: attention rollout — how much {reader} (what the head reads) draws from each of the "
                 f"{net.grid}x{net.grid} patches through {len(weights)} layers (heads averaged, residual 0.5)",
                 fontsize=10)
    written = [save(fig, out / "vision_rollout.png")]
    written.append(_vision_positions(net, out / "vision_positions.png"))
    fields = _vision_receptive_fields(net, len(weights), out / "vision_receptive_fields.png")
    return written + ([fields] if fields else [])


def receptive_fields(mask: Tensor, depth: int) -> Tensor:
    """(depth, T, T) bool: which tokens token i can draw from after 1..depth layers of the pattern ``mask``.

    One layer reads mask[i, j]; stacked layers compose it (the residual keeps i itself), so layer d sees
    (mask ∨ I)^d: Cordonnier et al.'s point that stacked local attention grows its field as a CNN's does."""
    step = (mask | torch.eye(mask.size(0), dtype=torch.bool, device=mask.device)).float()
    reach, fields = step, []
    for _ in range(depth):
        fields.append(reach > 0)
        reach = (reach @ step).clamp(max=1.0)
    return torch.stack(fields)


def _vision_receptive_fields(net: Any, depth: int, path: Path) -> Path | None:
    """Which patches a corner, an edge and a centre patch see in layer 1 and after every layer; None for Full
    (every patch sees every patch: nothing to draw)."""
    p, grid = net.num_prefix, net.grid
    mask = net.pattern.mask(p + grid * grid).cpu()
    if bool(mask.all()):
        return None
    # Through patches only: a class token (prefix) links every pair of patches within two layers on its own.
    fields = receptive_fields(mask[p:, p:], depth).reshape(depth, grid * grid, grid, grid)
    middle = grid // 2
    queries = {"corner (0, 0)": 0, f"edge (0, {middle})": middle,
               f"centre ({middle}, {middle})": middle * grid + middle}
    layers = sorted({1, min(2, depth), depth})
    fig, axes = plt.subplots(len(queries), len(layers), figsize=(2.3 * len(layers), 2.3 * len(queries)), squeeze=False)
    for row, (name, query) in enumerate(queries.items()):
        for col, layer in enumerate(layers):
            ax = axes[row][col]
            shown = fields[layer - 1, query].float().numpy()
            shown[query // grid, query % grid] = 2.0  # the query patch itself
            ax.imshow(shown, cmap="Blues", vmin=0, vmax=2.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            seen = int(fields[layer - 1, query].sum())
            ax.set_title(f"after {layer} layer{'s' if layer > 1 else ''}: {seen}/{grid * grid}", fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    prefix = (f"\nthrough patches only: the {p} class token sees and is seen by all, so it links any two patches in "
              "two layers") if p else ""
    fig.suptitle(f"vision: receptive fields of {net.pattern!r} on the {grid}x{grid} patch grid\n"
                 f"(dark = the query patch, blue = patches it draws from){prefix}", fontsize=9)
    return save(fig, path)


def _vision_positions(net: Any, path: Path) -> Path:
    """Position table (dimensions x patches, row-major) and each patch position's cosine similarity to all."""
    table = net.pos_embed[0, net.num_prefix:].detach().float().cpu()  # (grid², D)
    grid, dim = net.grid, table.size(1)
    unit = table / table.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    similarity = (unit @ unit.T).reshape(grid, grid, grid, grid)
    fig = plt.figure(figsize=(12, 5.2))
    ax = fig.add_subplot(1, 2, 1)
    sinusoidal = net.position != "learned"
    if sinusoidal:  # as the lecture draws it: sin dimensions above cos dimensions, in each half (row, column)
        half = dim // 2
        order = [d for start in (0, half) for d in [*range(start, start + half, 2), *range(start + 1, start + half, 2)]]
        table = table[:, order]
    values = table.T.numpy()
    limit = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_xlabel(f"patch (row-major over the {grid}x{grid} grid)")
    if sinusoidal:
        quarter = dim // 4
        ax.set_yticks([quarter * (k + 0.5) - 0.5 for k in range(4)],
                      ["row: sin", "row: cos", "column: sin", "column: cos"], fontsize=8)
        for k in range(1, 4):
            ax.axhline(quarter * k - 0.5, color="black", lw=0.6)
        ax.set_ylabel(f"dimension ({dim}; each block fast → slow frequency)")
        kind = "2-D sinusoidal (fixed)"
    else:
        ax.set_ylabel("dimension")
        kind = "learned (trained weights)"
    ax.set_title(f"position table: {kind}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.03, label="value")
    sub = fig.add_gridspec(grid, grid, left=0.60, right=0.89, wspace=0.08, hspace=0.08)
    low = float(similarity.min())
    norm = Normalize(min(low, 0.0) if low < 0 else low, 1.0)
    for r in range(grid):
        for c in range(grid):
            ax = fig.add_subplot(sub[r, c])
            image = ax.imshow(similarity[r, c].numpy(), cmap="viridis", norm=norm)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(str(r), fontsize=7, rotation=0, labelpad=6, va="center")
            if r == grid - 1:
                ax.set_xlabel(str(c), fontsize=7)
    cax = fig.add_axes((0.92, 0.15, 0.012, 0.7))
    fig.colorbar(image, cax=cax, label="cosine similarity")
    fig.text(0.745, 0.93, "small picture at (row r, column c): cosine similarity of patch (r, c)'s position\n"
             "vector to every patch's (bright = similar)", ha="center", fontsize=9)
    fig.text(0.745, 0.04, "patch column c", ha="center", fontsize=9)
    fig.text(0.57, 0.5, "patch row r", va="center", rotation=90, fontsize=9)
    return save(fig, path)


