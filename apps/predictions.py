"""One prediction path for every app: ``PredictionWriter`` writes what ``predict`` produced.

Each app's ``predict_step`` returns its outputs for one batch; at the end of the predict epoch the writer hands
all of them to the app's ``format_predictions``, which turns them into ``(path, text)`` files in the app's own
format (node CSV, top-k image CSV, ``.frames``/``.PHN`` per recording, CoNLL-U), and writes each file atomically
on rank 0. Apps never write prediction files themselves, so they cannot differ in atomicity, ranks or logging.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from .runs import check_writable, write_atomic


def _flatten(predictions: Sequence[Any], loaders: Any) -> list[Any]:
    """Lightning gives one list per predict dataloader when there are several; the apps read one list."""
    if isinstance(loaders, list | tuple) and len(loaders) > 1:
        return [item for loader in predictions for item in loader]
    return list(predictions)


class PredictionWriter(BasePredictionWriter):
    """Writes the files of ``model.format_predictions(outputs)`` when a predict epoch ends (rank 0 only)."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")
        self.written: list[Path] = []

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Before any prediction is computed: the output folder (``data.predict_output``'s, else the run folder) can
        be written, else one ``OutputError`` naming it (not after all predictions, naming a temporary file)."""
        if not trainer.is_global_zero:
            return
        given = getattr(trainer.datamodule, "predict_output", None) if trainer.datamodule is not None else None
        if given:
            check_writable(Path(given).parent if Path(given).suffix else Path(given), "data.predict_output")
        elif trainer.log_dir:
            check_writable(trainer.log_dir, "trainer.default_root_dir or data.predict_output")

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any],
                           batch_indices: Sequence[Any]) -> None:
        outputs = _flatten(predictions or [], trainer.predict_dataloaders)
        if not outputs or not trainer.is_global_zero:
            return
        files = pl_module.format_predictions(outputs)
        self.written = []
        for path, text in files:
            write_atomic(path, text)
            self.written.append(Path(path))
        if self.written:
            first = self.written[0]
            where = first if len(self.written) == 1 else f"{first.parent}/ ({len(self.written)} files)"
            rank_zero_info(f"{type(pl_module).__name__}: predictions -> {where}")
