"""Pictures of the speech encoders' attention (``attnlab explain``): the band of truncated attention over a window
of a spectrogram (queries x keys, the window's edges ``i - left`` and ``i + right`` drawn), every layer, and the
last layer per head; the learned relative-position tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from core import Truncated

from .plotting import grid, relative_tables, save

SPEECH_WINDOW = 200  # frames (2 s at 10 ms) of an utterance drawn as a queries x keys matrix


def draw_speech(model: Any, dm: Any, batch: dict[str, Tensor], out: Path, example: int) -> list[Path]:
    """The band of truncated attention over a window of one utterance's spectrogram.

    The encoder runs on the window plus ``depth · max(left, right)`` frames on each side: everything the window's
    frames can see through the layers, so the drawn weights equal those of the whole utterance, while memory
    stays (window + margins)², never (whole recording)²."""
    if getattr(model, "encoder", None) is None:
        raise ValueError("explain: model.backbone is context_mlp, which has no attention to draw")
    meta = model._require_meta()
    mask = batch["mask"]
    i = example % mask.size(0)
    total = int(mask[i].sum())
    feats = batch["features"][i, :total]
    width = min(total, SPEECH_WINDOW)
    start = (total - width) // 2
    pattern = model.pattern
    depth = len(model.encoder.blocks)
    margin = depth * max(pattern.left, pattern.right) if isinstance(pattern, Truncated) else total
    lo, hi = max(0, start - margin), min(total, start + width + margin)
    x = feats[lo:hi][None]
    _, weights = model.encode(x, torch.ones(1, hi - lo, dtype=torch.bool, device=x.device), return_weights=True)
    a = start - lo
    maps = [w[0, :, a:a + width, a:a + width].float().cpu() for w in weights]  # (heads, W, W) per layer
    cfg = meta.features
    bands = cfg.n_mels if cfg.kind == "logmel" else cfg.n_mfcc
    spec = feats[start:start + width, :bands].float().cpu().T.numpy()
    frames = np.arange(start, start + width)
    labels = batch["labels"][i, start:start + width].tolist() if batch["labels"].dim() == 2 else None
    name = _utterance_name(dm, int(batch["index"][i]))
    what = (f"Truncated(left={pattern.left}, right={pattern.right})" if isinstance(pattern, Truncated)
            else type(pattern).__name__)
    extent = (start - 0.5, start + width - 0.5, start + width - 0.5, start - 0.5)

    fig, axes = plt.subplots(1 + depth, 1, figsize=(10, 2.0 + 2.4 * depth), sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [0.8] + [1.0] * depth})
    image = axes[0].imshow(spec, origin="lower", aspect="auto", cmap="magma",
                           extent=(start - 0.5, start + width - 0.5, -0.5, bands - 0.5))
    fig.colorbar(image, ax=axes[0], fraction=0.03, pad=0.01, label="value (normalised)")
    axes[0].set_ylabel(f"{cfg.kind} band")
    axes[0].set_title(f"{name}: frames {start}–{start + width - 1} of {total} (10 ms each), normalised "
                      f"{cfg.kind}" + (" with the reference phones" if labels else ""), fontsize=10)
    if labels:
        _phone_labels(axes[0], frames, labels, meta.labels, bands)
    for layer, w in enumerate(maps):
        ax = axes[1 + layer]
        image = ax.imshow(w.mean(0).numpy(), cmap="viridis", aspect="auto", extent=extent, vmin=0.0,
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="weight α'(i, j)")
        _band_edges(ax, pattern, frames, start, width)
        ax.set_ylabel(f"layer {layer + 1}\nquery frame i")
    axes[-1].set_xlabel("key frame j (dashed: i − left and i + right, the edges of the band)")
    fig.suptitle(f"speech: {what} attention, mean of {maps[0].size(0)} heads per layer", fontsize=11)
    written = [save(fig, out / "speech_band.png")]

    heads = maps[-1].size(0)
    rows, cols = grid(heads)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.4 * rows), squeeze=False)
    vmax = float(maps[-1].max())
    for h in range(rows * cols):
        ax = axes[h // cols][h % cols]
        if h >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(maps[-1][h].numpy(), cmap="viridis", extent=extent, vmin=0.0, vmax=vmax,
                          interpolation="nearest")
        _band_edges(ax, pattern, frames, start, width)
        ax.set_title(f"head {h + 1}", fontsize=9)
        ax.set_xlabel("key frame j", fontsize=8)
        if h % cols == 0:
            ax.set_ylabel("query frame i", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="weight α'(i, j)")
    fig.suptitle(f"speech: {what}, last layer ({depth} of {depth}) per head, {name} (dashed: band edges)",
                 fontsize=10)
    written.append(save(fig, out / "speech_heads.png"))
    return written + relative_tables(model.encoder, out / "speech_positions.png", "speech")


def _band_edges(ax: plt.Axes, pattern: Any, frames: np.ndarray, start: int, width: int) -> None:
    """Dashed white lines at key = query - left and key = query + right: the edges of the truncated band."""
    if isinstance(pattern, Truncated):
        ax.plot(frames - pattern.left, frames, color="white", lw=0.8, ls="--")
        ax.plot(frames + pattern.right, frames, color="white", lw=0.8, ls="--")
    ax.set_xlim(start - 0.5, start + width - 0.5)
    ax.set_ylim(start + width - 0.5, start - 0.5)


def _utterance_name(dm: Any, index: int) -> str:
    try:
        return str(dm.item("val", index).utt.id)
    except Exception:  # a datamodule without item(): the batch index names it
        return f"validation utterance {index}"


def _phone_labels(ax: plt.Axes, frames: np.ndarray, labels: list[int], names: list[str], height: int) -> None:
    """Segment boundaries as white lines and each segment's phone written over it."""
    start = 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            if labels[start] >= 0 and t - start >= 3:
                ax.text(frames[start] + (t - start) / 2 - 0.5, height * 0.82, names[labels[start]], color="white",
                        ha="center", va="center", fontsize=8)
            if t < len(labels):
                ax.axvline(frames[t] - 0.5, color="white", lw=0.5, alpha=0.7)
            start = t


