"""Pictures of the demo sequence classifier: token x token attention of one sequence and its position table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from .plotting import MAX_TOKENS, pick, position_matrix, sinusoid_picture, token_heatmaps


def draw_sequence(model: Any, dm: Any, batch: tuple[Tensor, ...], out: Path, example: int) -> list[Path]:
    tokens, mask = batch[0], batch[1]
    lengths = mask.sum(1).tolist()
    i = pick(lengths, example, lo=4, hi=MAX_TOKENS)
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


