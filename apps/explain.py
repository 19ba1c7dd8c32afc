"""``attnlab explain``: pictures of a trained model's attention, drawn by the model's own app.

``Trainer.explain`` restores the checkpoint through an ordinary one-batch validation run (every app hook —
vocabularies, label inventories, normalisation — as ``test`` would); before that run starts, this callback asks
the model for the batch worth drawing (``AttnLabModule.explain_batch``) and for its pictures
(``AttnLabModule.explain_figures``). What each app draws is documented in its ``figures`` module; this module
knows no app, so adding an app means writing its two hooks, not editing this file.

Own inputs: when the datamodule has a ``predict_path`` (``--data.predict_path my_text.txt``, an image folder, an
audio folder), the batch comes from its predict loader, so the pictures show the user's first inputs instead
of validation items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from core.errors import ConfigError


def batch_examples(batch: Any) -> int | None:
    """How many examples (sentences, utterances, images; nodes of a graph) a batch holds; None: unknown."""
    if isinstance(batch, torch.Tensor):
        return batch.size(0) if batch.dim() else None
    if hasattr(batch, "num_nodes") and not isinstance(batch, dict | list | tuple):  # a PyG Data: a node
        return int(batch.num_nodes)
    values = list(batch.values()) if isinstance(batch, dict) else list(batch) if isinstance(batch, list | tuple) else []
    return next((n for n in map(batch_examples, values) if n is not None), None)


def check_example(example: int, batch: Any) -> None:
    """``--example`` within the batch drawn, else one ``ConfigError`` (an index past it used to wrap around)."""
    count = batch_examples(batch)
    if example < 0 or (count is not None and example >= count):
        raise ConfigError(f"explain --example {example}", where=None,
                          expected=f"an index 0..{count - 1 if count else 0} into the batch drawn ({count} examples)",
                          fix="Pass --example within that range (a larger data.batch_size draws more).")


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
        if dm is not None and getattr(dm, "predict_path", None):
            dm.setup("predict")
            loader = dm.predict_dataloader()
        else:
            loader = dm.val_dataloader() if dm is not None else trainer.val_dataloaders
        batch = trainer.strategy.batch_to_device(pl_module.explain_batch(loader))
        check_example(self.example, batch)
        self.out.mkdir(parents=True, exist_ok=True)
        self.written = pl_module.explain_figures(batch, self.out, self.example)
        rank_zero_info("explain: wrote\n" + "\n".join(f"  {p}" for p in self.written))
