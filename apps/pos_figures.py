"""Pictures of the tagger's attention (``attnlab explain``): token x token attention per layer and head of one
validation sentence (words on the axes, predicted tags with the words), and the learned relative-position tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from datamodules.pos import WORD_INPUTS

from .plotting import MAX_TOKENS, MIN_TOKENS, pick, relative_tables, token_heatmaps


def draw_tagger(model: Any, dm: Any, batch: dict[str, Tensor], out: Path, example: int) -> list[Path]:
    """Token x token attention of one validation sentence (words on the axes, predicted tags with the words)."""
    if model.lstm is not None:
        raise ValueError("explain: model.backbone is bilstm, which has no attention to draw")
    mask = batch["mask"]
    lengths = mask.sum(1).tolist()
    i = pick(lengths, example, lo=MIN_TOKENS, hi=min(MAX_TOKENS, model.max_len))
    n = lengths[i]
    one = {k: v[i:i + 1, :n] for k, v in batch.items() if k in (*WORD_INPUTS, "mask")}
    x = model.features.embed(one)
    encoded, weights = model._encode(x, one["mask"], return_weights=True)
    tags = model.head(encoded)[0].argmax(-1).tolist()
    names = model.vocab.tag_names
    index = int(batch["index"][i])
    sentences = getattr(dm, "sentences", {}).get("val") if dm is not None else None
    words = list(sentences[index].words) if sentences is not None else [f"w{t}" for t in one["words"][0].tolist()]
    words = [w if len(w) <= 14 else w[:13] + "…" for w in words[:n]]
    queries = [f"{w} /{names[t]}" for w, t in zip(words, tags, strict=True)]
    written = token_heatmaps([w[0].cpu() for w in weights], words, queries, "POS tagger", out / "pos_attention")
    return written + relative_tables(model.encoder, out / "pos_positions.png", "POS tagger")


