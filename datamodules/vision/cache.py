"""The decoded-folder cache: ``read_folder`` once, its result saved (atomically, with ``apps.runs.save_atomic``)
under ``cache_dir`` and reused while the folder holds the same files, so later runs skip decoding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_info

from apps.runs import save_atomic

from .images import ImageSet, list_images, read_folder


def content_hash(folder: Path, files: list[Path]) -> str:
    """SHA-256 of every image's relative path, size and modification time: any added, removed, replaced or
    edited file changes it (the old key, count + first/last name, missed edits in the middle)."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_folder_cached(folder: Path, cache_dir: Path | None, on_bad_file: Literal["error", "skip"] = "error",
                       size: int | None = None, crop_pct: float = 1.0) -> ImageSet:
    """``read_folder`` with its decoded result saved under ``cache_dir`` (atomically), keyed by the folder and
    image size, and reused while the folder holds the same files (``content_hash``: names, sizes, mtimes)."""
    if cache_dir is None:
        return read_folder(folder, on_bad_file, size, crop_pct)
    files, _, classes = list_images(folder)
    key = [str(folder.resolve()), content_hash(folder, files), classes, size, on_bad_file, crop_pct]
    crop = "" if crop_pct == 1.0 else f"-crop{crop_pct:g}"
    cache = cache_dir / f"{folder.parent.name}-{folder.name}-{size or 'native'}{crop}.pt"
    if cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True)
            if saved.get("key") == key:
                return ImageSet(saved["images"], saved["labels"], saved["classes"], saved["names"])
        except Exception:  # unreadable or stale cache: decode again
            pass
    rank_zero_info(f"decoding {len(files)} images of {folder} (once: cached in {cache})")
    images = read_folder(folder, on_bad_file, size, crop_pct)
    saved = {"key": key, "images": images.images, "labels": images.labels, "classes": images.classes,
             "names": images.names}
    save_atomic(cache, lambda tmp: torch.save(saved, tmp))
    return images
