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

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info


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
        self.out.mkdir(parents=True, exist_ok=True)
        self.written = pl_module.explain_figures(batch, self.out, self.example)
        rank_zero_info("explain: wrote\n" + "\n".join(f"  {p}" for p in self.written))
