"""PyG's processed caches (``<root>/.../processed/*.pt``) read with ``weights_only=True`` only: no code from data.

Why: PyG's ``torch_geometric.io.fs.torch_load`` retries a failed ``weights_only=True`` load with
``weights_only=False`` when the pickle names a global that is not allow-listed, so a ``data.pt`` someone replaced
runs whatever its pickle says the next time the dataset is opened. Here every processed file is first loaded
with ``weights_only=True`` (PyG's own classes allowed); a file that fails is a stale or foreign cache and is
deleted, so PyG rebuilds it from the raw files. While PyG builds the dataset its loader is replaced by one that
never falls back (``strict_pyg_loads``): a file that is still unsafe is one ``DataError``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from core.errors import DataError

from .files import pyg_safe_globals


def _load_weights_only(path: str | Path, map_location: Any = None) -> Any:
    with torch.serialization.safe_globals(pyg_safe_globals()):
        return torch.load(path, map_location=map_location, weights_only=True)


def scrub_processed(root: str | Path) -> list[Path]:
    """Delete every ``processed/*.pt`` under ``root`` that does not load with ``weights_only=True``; returns them."""
    removed = []
    for path in sorted(Path(root).rglob("processed/*.pt")):
        try:
            _load_weights_only(path, "cpu")
        except Exception as err:
            warnings.warn(f"{path}: PyG processed cache does not load with weights_only=True "
                          f"({type(err).__name__}); deleted, PyG rebuilds it from the raw files", stacklevel=2)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def strict_torch_load(path: str, map_location: Any = None) -> Any:
    """PyG's ``fs.torch_load`` without its ``weights_only=False`` fallback."""
    try:
        return _load_weights_only(path, map_location)
    except Exception as err:
        raise DataError(f"{path}: PyG processed file does not load with weights_only=True ({type(err).__name__})",
                        expected="tensors and PyG data classes only (no other pickled objects)",
                        fix="Delete the processed/ folder so PyG rebuilds it from the raw files.") from err


@contextlib.contextmanager
def strict_pyg_loads(root: str | Path) -> Iterator[None]:
    """Scrub ``root``'s processed caches, then build PyG datasets with ``strict_torch_load`` in place."""
    import torch_geometric.io.fs as pyg_fs

    scrub_processed(root)
    original, pyg_fs.torch_load = pyg_fs.torch_load, strict_torch_load
    try:
        yield
    finally:
        pyg_fs.torch_load = original
