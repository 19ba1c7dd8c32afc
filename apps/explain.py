"""Pictures of a trained model's attention (``attnlab explain``), drawn with matplotlib into PNG files.

What each app draws, from the first validation batch (``example`` picks the item):

* POS tagger (and the demo): token x token attention per layer and head, words on the axes; the learned
  relative-position tables (dimensions x distances) or the sinusoidal matrix (dimensions x positions).
* Speech: the band of truncated attention over a window of a spectrogram (queries x keys, with the window's
  edges ``i - left`` and ``i + right`` drawn), every layer, and the last layer per head.
* Vision: attention rollout (``core.attention_rollout``) over the patches of a few images; the position table
  (dimensions x patches) and how similar each patch's position vector is to every other's.
* Graph: a node's attention weights over its in-neighbours (and itself) drawn on its neighbourhood, per layer;
  the same weights per head.

The weights come from the models' own forward passes with ``return_weights`` (core computes them); this
module only selects and draws. Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import lightning as L  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402
from lightning.pytorch.utilities import rank_zero_info  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from torch import Tensor  # noqa: E402

from core import Truncated, attention_rollout, sinusoidal_positions  # noqa: E402

DPI = 100  # a few hundred KB per picture at most
MIN_TOKENS = 12  # shortest sentence worth a token x token picture
MAX_TOKENS = 24  # longest sentence drawn with readable words on both axes
VISION_IMAGES = 8  # images drawn with their attention rollout
SPEECH_WINDOW = 200  # frames (2 s at 10 ms) of an utterance drawn as a queries x keys matrix


class ExplainCallback(Callback):
    """Draws before the one-batch validation run of ``Trainer.explain`` starts, when the checkpoint's weights,
    the vocabularies / label inventories and the datamodule are all in place (eval mode, no gradients)."""

    def __init__(self, out: Path, example: int = 0) -> None:
        self.out, self.example = Path(out), example
        self.written: list[Path] = []

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        loader = dm.val_dataloader() if dm is not None else trainer.val_dataloaders
        batch = trainer.strategy.batch_to_device(first_drawable(pl_module, loader))
        self.written = explain(pl_module, dm, batch, self.out, self.example)
        rank_zero_info("explain: wrote\n" + "\n".join(f"  {p}" for p in self.written))


def first_drawable(model: L.LightningModule, loader: Any, max_batches: int = 1000) -> Any:
    """The first validation batch with something worth drawing: for the tagger and the demo, a sequence of
    ``MIN_TOKENS``-``MAX_TOKENS`` tokens (evaluation loaders sort by length, so the first batch of a treebank holds
    one-word sentences); for vision, one image of each of up to ``VISION_IMAGES`` classes, gathered over batches
    (a validation split may be ordered by class); every other app takes the first batch. Falls back to the first
    batch."""
    from apps.pos import Tagger
    from apps.sequence import SequenceClassifier
    from apps.vision import ViTClassifier

    if isinstance(model, ViTClassifier):
        return _one_image_per_class(loader, max_batches)
    first = None
    for count, batch in enumerate(loader):
        if first is None:
            first = batch
        if not isinstance(model, Tagger | SequenceClassifier):
            return batch
        mask = batch["mask"] if isinstance(batch, dict) else batch[1]
        if any(MIN_TOKENS <= n <= MAX_TOKENS for n in mask.sum(1).tolist()) or count + 1 >= max_batches:
            return batch
    if first is None:
        raise ValueError("explain: the validation loader is empty")
    return first


def _one_image_per_class(loader: Any, max_batches: int) -> tuple[Tensor, Tensor]:
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


def explain(model: L.LightningModule, dm: Any, batch: Any, out: Path, example: int = 0) -> list[Path]:
    """Draw what ``model`` attends to in ``batch`` into ``out``; returns the PNG files written."""
    from apps.graph import NodeClassifier
    from apps.pos import Tagger
    from apps.sequence import SequenceClassifier
    from apps.speech import SpeechModule
    from apps.vision import ViTClassifier

    drawers = [(Tagger, draw_tagger), (SequenceClassifier, draw_sequence), (SpeechModule, draw_speech),
               (ViTClassifier, draw_vision), (NodeClassifier, draw_graph)]
    for cls, draw in drawers:
        if isinstance(model, cls):
            out.mkdir(parents=True, exist_ok=True)
            return draw(model, dm, batch, out, example)
    raise ValueError(f"explain: no pictures defined for {type(model).__name__}")


# ---------------------------------------------------------------------------------------------- drawing
def save(fig: plt.Figure, path: Path) -> Path:
    """Save ``fig`` as PNG via a temporary file in the same folder and a rename, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a picture is as readable as any other file
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
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
        rows, cols = _grid(heads)
        fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
        vmax = float(w.max())
        for h in range(rows * cols):
            ax = axes[h // cols][h % cols]
            if h >= heads:
                ax.axis("off")
                continue
            image = ax.imshow(w[h].numpy(), cmap="viridis", vmin=0.0, vmax=vmax)
            ax.set_title(f"head {h + 1}", fontsize=9)
            _word_axes(ax, keys, queries if h % cols == 0 else None)
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
        _word_axes(ax, keys, queries if layer == 0 else None)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="attention weight")
    fig.suptitle(f"{title}: attention of every layer", fontsize=10)
    written.append(save(fig, stem.with_name(f"{stem.name}_layers.png")))
    return written


def _word_axes(ax: plt.Axes, keys: list[str], queries: list[str] | None) -> None:
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


# ------------------------------------------------------------------------------------------ POS, demo
def draw_tagger(model: Any, dm: Any, batch: dict[str, Tensor], out: Path, example: int) -> list[Path]:
    """Token x token attention of one validation sentence (words on the axes, predicted tags with the words)."""
    if model.lstm is not None:
        raise ValueError("explain: model.encoder is bilstm, which has no attention to draw")
    mask = batch["mask"]
    lengths = mask.sum(1).tolist()
    i = _pick(lengths, example, lo=MIN_TOKENS, hi=min(MAX_TOKENS, model.max_len))
    n = lengths[i]
    one = {k: v[i:i + 1, :n] for k, v in batch.items() if k in ("words", "chars", "shapes", "suffixes", "mask")}
    x = model.features(one["words"], one["chars"], one["shapes"], one.get("suffixes"))
    encoded, weights = model._encode(x, one["mask"], return_weights=True)
    tags = model.head(encoded)[0].argmax(-1).tolist()
    names = model.vocab.tag_names
    index = int(batch["index"][i])
    sentences = getattr(dm, "sentences", {}).get("val") if dm is not None else None
    words = list(sentences[index].words) if sentences is not None else [f"w{t}" for t in one["words"][0].tolist()]
    words = [w if len(w) <= 14 else w[:13] + "…" for w in words[:n]]
    queries = [f"{w} /{names[t]}" for w, t in zip(words, tags, strict=True)]
    written = token_heatmaps([w[0].cpu() for w in weights], words, queries, "POS tagger", out / "pos_attention")
    return written + _relative_tables(model.encoder, out / "pos_positions.png", "POS tagger")


def _relative_tables(encoder: Any, path: Path, title: str) -> list[Path]:
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


def draw_sequence(model: Any, dm: Any, batch: tuple[Tensor, ...], out: Path, example: int) -> list[Path]:
    tokens, mask = batch[0], batch[1]
    lengths = mask.sum(1).tolist()
    i = _pick(lengths, example, lo=4, hi=MAX_TOKENS)
    n = lengths[i]
    _, weights = model.encode(tokens[i:i + 1, :n], mask[i:i + 1, :n], return_weights=True)
    words = [str(t) for t in tokens[i, :n].tolist()]
    written = token_heatmaps([w[0].cpu() for w in weights], words, words, "demo (token ids)", out / "demo_attention")
    dim = model.embed.embedding_dim
    if model.position == "sinusoidal":
        written.append(sinusoid_picture(dim, 128, out / "demo_positions.png"))
    elif model.learned_positions is not None:
        table = model.learned_positions.table.detach().cpu()[:64]
        written.append(position_matrix(table, "position", "learned positional encoding (trained weights)",
                                       out / "demo_positions.png"))
    return written


def sinusoid_picture(dim: int, length: int, path: Path) -> Path:
    """The sinusoidal table of "Attention Is All You Need" as the lecture draws it: dimensions x positions, the sin
    dimensions (even) above the cos dimensions (odd), each from the fastest to the slowest frequency."""
    table = sinusoidal_positions(length, dim)
    reordered = torch.cat([table[:, 0::2], table[:, 1::2]], dim=1)
    return position_matrix(reordered, "position", f"sinusoidal positional encoding e_pos ({dim} dimensions x {length} "
                           f"positions; rows 0–{dim // 2 - 1}: sin, rows {dim // 2}–{dim - 1}: cos)", path)


def _pick(lengths: list[int], example: int, lo: int, hi: int) -> int:
    """The ``example``-th item whose length is in [lo, hi], else the longest one not above ``hi``."""
    fitting = [i for i, n in enumerate(lengths) if lo <= n <= hi]
    if fitting:
        return fitting[example % len(fitting)]
    shorter = [i for i, n in enumerate(lengths) if n <= hi] or list(range(len(lengths)))
    return max(shorter, key=lambda i: lengths[i] if lengths[i] <= hi else -lengths[i])


# ----------------------------------------------------------------------------------------------- speech
def draw_speech(model: Any, dm: Any, batch: dict[str, Tensor], out: Path, example: int) -> list[Path]:
    """The band of truncated attention over a window of one utterance's spectrogram.

    The encoder runs on the window plus ``depth · max(left, right)`` frames on each side: everything the window's
    frames can see through the layers, so the drawn weights equal those of the whole utterance, while memory
    stays (window + margins)², never (whole recording)²."""
    if getattr(model, "encoder", None) is None:
        raise ValueError("explain: model.encoder is context_mlp, which has no attention to draw")
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
    rows, cols = _grid(heads)
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
    return written + _relative_tables(model.encoder, out / "speech_positions.png", "speech")


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


# ----------------------------------------------------------------------------------------------- vision
def draw_vision(model: Any, dm: Any, batch: tuple[Tensor, Tensor], out: Path, example: int) -> list[Path]:
    """Attention rollout over the patches of up to 8 validation images, and the position table."""
    from apps.vision import ViT

    net = model.net
    if not isinstance(net, ViT):
        raise ValueError("explain: model.backbone is resnet, which has no attention to draw")
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
    return written


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


# ------------------------------------------------------------------------------------------------ graph
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
    node = candidates[example % len(candidates)]
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
