"""``attnlab export``: a trained model as one ``torch.export`` program (``.pt2``) that runs without attnlab.

Each app says what to trace through ``AttnLabModule.export_example(batch, length)``: the module (the app itself,
or a tensor-only wrapper such as the graph app's dense-adjacency step), example inputs of the given sizes, the
dynamic dimensions (``torch.export.Dim.DYNAMIC``: batch, sequence length, number of nodes) and what a caller
must know to build inputs and read outputs. This module knows no app: it traces what the hook returns and
bundles, as the ``attnlab.json`` extra file of the archive, the app's class, its hyperparameters, the state it
took from its data (vocabularies, label inventory, normalisation statistics: ``data_state_key``) and the
hook's notes. Reading it back needs torch only::

    program, info = apps.export.load("model.pt2")      # or: torch.export.load(path, extra_files=...)
    logits = program.module()(*inputs)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint_io import read_checkpoint
from .runs import save_atomic

METADATA = "attnlab.json"  # the extra file of the .pt2 archive that describes inputs, outputs and data state


@dataclass
class ExportSpec:
    """What an app traces: ``module(*args)`` with ``dynamic_shapes`` (as ``torch.export.export`` takes them) and
    ``notes`` for the caller (input layout, output meaning, label names).

    ``backend``: the attention backend every ``core.MultiHeadSelfAttention`` uses while tracing (None: its own).
    ``auto`` picks a backend by sequence length (banded above 128 frames), and a traced program keeps the branch
    of its example, so apps whose choice depends on length (speech, LRA) trace ``dense``: exact at every length."""

    module: nn.Module
    args: tuple[Any, ...]
    dynamic_shapes: Any = None
    notes: dict[str, Any] = field(default_factory=dict)
    backend: str | None = None


@contextmanager
def attention_backend(module: nn.Module, backend: str | None) -> Iterator[None]:
    """Set ``backend`` on every attention layer of ``module`` (those with a ``backend`` attribute) for a while."""
    layers = [m for m in module.modules() if isinstance(getattr(m, "backend", None), str)] if backend else []
    saved = [m.backend for m in layers]
    for m in layers:
        m.backend = backend
    try:
        yield
    finally:
        for m, old in zip(layers, saved, strict=True):
            m.backend = old


def metadata(model: Any, spec: ExportSpec) -> dict[str, Any]:
    """The JSON bundled with the program: app, hyperparameters, data state, the app's notes."""
    info: dict[str, Any] = {"app": f"{type(model).__module__}.{type(model).__qualname__}",
                            "hparams": dict(getattr(model, "hparams", {})), **spec.notes}
    key = getattr(model, "data_state_key", None)
    if key and model.data_state is not None:
        info[key] = model.pack_data_state(model.data_state)
    return info


def export(model: Any, batch: int = 2, length: int = 12) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """Trace ``model`` (eval mode, on the CPU) with the inputs of its ``export_example`` hook."""
    model = model.to("cpu").eval()
    spec: ExportSpec = model.export_example(batch=batch, length=length)
    with torch.no_grad(), attention_backend(spec.module, spec.backend):
        program = torch.export.export(spec.module.eval(), spec.args, dynamic_shapes=spec.dynamic_shapes)
    return program, metadata(model, spec)


def save(program: torch.export.ExportedProgram, info: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write the program with ``info`` as its ``attnlab.json`` extra file, atomically."""
    text = json.dumps(info, indent=1, default=str)
    return save_atomic(out, lambda tmp: torch.export.save(program, tmp, extra_files={METADATA: text}))


def load(path: str | os.PathLike) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """The program of ``path`` and its bundled metadata."""
    extra = {METADATA: ""}
    program = torch.export.load(path, extra_files=extra)
    return program, json.loads(extra[METADATA] or "{}")


def restore(model: Any, ckpt_path: str | os.PathLike) -> Any:
    """Put the weights and data state of ``ckpt_path`` into ``model`` (built from the checkpoint's config), as a
    Lightning restore does: the app's ``on_load_checkpoint`` (vocabularies, labels: data-sized layers), then the
    state dict."""
    checkpoint = read_checkpoint(ckpt_path)  # missing/truncated: one CheckpointError naming the file
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model


def export_checkpoint(model: Any, ckpt_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Restore ``ckpt_path`` into ``model`` (weights and data state), trace it and save it to ``out``."""
    program, info = export(restore(model, ckpt_path))
    info["checkpoint"] = str(ckpt_path)
    return save(program, info, out)
