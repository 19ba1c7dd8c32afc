"""``AttnLabTrainer``: Lightning's Trainer plus the ``explain`` and ``export`` subcommands of ``attnlab``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from apps.explain import ExplainCallback
from apps.export import export_checkpoint


class AttnLabTrainer(L.Trainer):
    """``lightning.Trainer`` plus ``explain`` and ``export`` (the ``attnlab`` subcommands of the same names)."""

    def explain(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
                ckpt_path: str | None = None, out: str = "figures", example: int = 0,
                weights_only: bool | None = None) -> list[Path]:
        """Draw the attention of a trained model as PNG pictures in ``out`` (see ``apps.explain``).

        ``ckpt_path``: the checkpoint whose weights are drawn (best, last or a file). ``example``: which item of
        the first validation batch to draw (a sentence, an utterance, an image, a node). The checkpoint is
        restored by an ordinary validation run of one batch, with every app hook (vocabularies, label
        inventories, normalisation) as ``test`` would; the pictures are drawn before it starts.
        ``weights_only``: as for ``validate`` (accepted so that a fit run's saved ``config.yaml`` works here too).
        """
        if ckpt_path is None:
            raise ValueError("explain needs --ckpt_path (best, last or a checkpoint file): the pictures show "
                             "trained weights")
        callback = ExplainCallback(Path(out), example)
        limit, self.limit_val_batches = self.limit_val_batches, 1
        self.callbacks.append(callback)
        try:
            self.validate(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=weights_only)
        finally:
            self.callbacks.remove(callback)
            self.limit_val_batches = limit
        return callback.written

    def export(self, model: L.LightningModule, datamodule: L.LightningDataModule | None = None,
               ckpt_path: str | None = None, out: str = "model.pt2", weights_only: bool | None = None) -> Path:
        """Trace the trained model with ``torch.export`` into ``out`` (a ``.pt2`` archive, see ``apps.export``).

        ``ckpt_path``: the checkpoint to export (best, last or a file); its weights and the state the model took
        from its data (vocabularies, labels, normalisation) are restored into the configured model, traced with
        dynamic batch and length, and bundled with that state as ``attnlab.json``. ``datamodule`` and
        ``weights_only`` are accepted so that the run's configs work here too; no data is read.
        """
        if ckpt_path is None:
            raise ValueError("export needs --ckpt_path (best, last or a checkpoint file)")
        path = export_checkpoint(model, ckpt_path, out)
        rank_zero_info(f"export: {ckpt_path} -> {path}")
        return path
