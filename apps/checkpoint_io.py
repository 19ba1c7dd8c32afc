"""Checkpoint files: written through ``apps.runs.save_atomic``, read with ``weights_only=True``.

Lightning's ``TorchCheckpointIO`` stages a checkpoint in the system temp folder and copies it over the target
(fsspec's local transaction): on a full disk the copy stops half-way and ``last.ckpt`` is left truncated under
its final name. ``AtomicCheckpointIO`` writes the temporary file next to the target and renames it, so a failed
save leaves the previous checkpoint intact. It is the CLI's default checkpoint plugin (``apps.cli``).

Lightning 2.6 writes ``last.ckpt`` with the same ``save_checkpoint`` (a full dump, not a copy) unless
``save_last: link``, where it links or copies the top-k file; ``atomic_link`` makes that copy atomic too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from apps.runs import save_atomic
from core.errors import CheckpointError


class MissingCheckpointError(FileNotFoundError, CheckpointError):
    """A checkpoint path that names no file (a ``FileNotFoundError`` too)."""

    def __init__(self, message: str) -> None:
        self.what, self.where, self.expected, self.fix = message, None, None, None
        FileNotFoundError.__init__(self, message)

    def __str__(self) -> str:
        return self.what


def read_checkpoint(path: str | os.PathLike, key: str = "ckpt_path", map_location: Any = "cpu") -> dict:
    """``torch.load(path, weights_only=True)``, any failure one ``CheckpointError`` naming ``key`` and the file."""
    path = Path(path)
    if not path.is_file():
        raise MissingCheckpointError(f"{key}={path}: checkpoint does not exist. Pass an existing checkpoint file as "
                                     f"{key}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, or unsafe pickles: one message for all
        raise CheckpointError(f"{key}={path}: not a readable checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})",
                              expected="a complete file saved by attnlab or torch.save of tensors",
                              fix="Use another checkpoint (last.ckpt / best-*.ckpt of the run) or retrain.") from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go through ``save_atomic`` and whose loads are ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        save_atomic(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: Any, map_location: Callable | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location,
                                       weights_only=True if weights_only is None else weights_only)


def atomic_link(filepath: str, linkpath: str) -> None:
    """``save_last: link``: a copy of ``filepath`` at ``linkpath`` written atomically (never a half copy)."""
    if os.path.abspath(filepath) != os.path.abspath(linkpath):
        save_atomic(linkpath, lambda tmp: shutil.copyfile(filepath, tmp))
