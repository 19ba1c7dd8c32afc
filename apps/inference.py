"""Predict with a trained checkpoint from Python: no trainer, no config, no data files.

    from apps.inference import load
    tagger = load("runs/tagger/version_0/checkpoints/last.ckpt")
    tagger.predict(["The dog barks .", "I saw her ."])   # [["DET", "NOUN", "VERB", "PUNCT"], ...]

``load`` reads the app's class from the checkpoint (the CLI saves it as ``_class_path``), restores weights and the
state the model took from its data (vocabularies, labels, normalisation), and returns a ``Predictor`` whose
``predict(items)`` hands batches of items to the app's ``predict_items`` hook. What an item is depends on the app:

========================  =====================================================  ===================================
app                       item                                                    result per item
========================  =====================================================  ===================================
Tagger (POS)              a sentence: a string (split at spaces) or a token list  its tags
ViTClassifier (vision)    an image file path or a (C, H, W) tensor (uint8 or      (class name, probability)
                          float in [0, 1]); resized + centre-cropped, normalised
FrameClassifier (speech)  an audio file path or a mono waveform at the model's    one phone label per 10 ms frame
                          sample rate
UtteranceClassifier       as FrameClassifier                                      (label, probability)
NodeClassifier (graph)    a ``torch_geometric.data.Data`` with x and edge_index    the class id of every node
Sequence / LRA            a list of token ids                                     the class id
========================  =====================================================  ===================================
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import torch

from .base import AttnLabModule


def model_class(checkpoint: dict[str, Any]) -> type[AttnLabModule]:
    """The app class a checkpoint was saved by (``hyper_parameters._class_path``)."""
    path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if not path:
        raise ValueError("this checkpoint does not name its app (no hyper_parameters._class_path: it was not saved by "
                         "`attnlab fit`); load it with the app class: <App>.load_from_checkpoint(path)")
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def load_model(checkpoint: str | os.PathLike, cls: type[AttnLabModule] | None = None,
               map_location: str | torch.device = "cpu") -> AttnLabModule:
    """The trained model of ``checkpoint`` in eval mode (its class from the checkpoint unless ``cls`` is given)."""
    if cls is None:
        cls = model_class(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True))
    return cls.load_from_checkpoint(checkpoint, map_location=map_location).eval()


class Predictor:
    """A trained model and ``predict(items)``: its ``predict_items`` hook on batches of ``batch_size`` items."""

    def __init__(self, model: AttnLabModule, batch_size: int = 64) -> None:
        self.model, self.batch_size = model, batch_size

    @torch.no_grad()
    def predict(self, items: Sequence[Any]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(items), self.batch_size):
            results += self.model.predict_items(list(items[start:start + self.batch_size]))
        return results


def load(checkpoint: str | os.PathLike, cls: type[AttnLabModule] | None = None, batch_size: int = 64,
         map_location: str | torch.device = "cpu") -> Predictor:
    """``Predictor`` of the trained model in ``checkpoint`` (see the module docstring for what each app takes)."""
    return Predictor(load_model(checkpoint, cls, map_location), batch_size)
