"""The feature cache: each file's features are computed once, kept in memory (per process) and, with a
``cache_dir``, on disk (written atomically with ``apps.runs.save_atomic``: a reader never sees half a file).

Entries are keyed by the audio file (resolved path, mtime, size) and the feature settings; a damaged disk entry
is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from apps.runs import save_atomic

from .features import FeatureConfig

Entry = tuple[Tensor, int, int]  # features, num_samples, audio rate
_FEATURES: dict[str, Entry] = {}  # per process: key -> entry


def cache_key(path: Path, cfg: FeatureConfig) -> str:
    stat = path.stat()
    raw = f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{sorted(cfg.to_dict().items())}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def lookup(key: str, cache_dir: Path | None) -> Entry | None:
    """The entry of ``key`` from memory, else from ``cache_dir`` (then kept in memory too), else None."""
    if key in _FEATURES:
        return _FEATURES[key]
    disk = cache_dir / f"{key}.pt" if cache_dir else None
    if disk is not None and disk.is_file():
        try:
            saved = torch.load(disk, weights_only=True)
            _FEATURES[key] = (saved["features"], int(saved["num_samples"]), int(saved["audio_rate"]))
            return _FEATURES[key]
        except Exception:  # a damaged cache file is recomputed and rewritten
            pass
    return None


def store(key: str, entry: Entry, cache_dir: Path | None) -> Entry:
    """Keep ``entry`` in memory and, with ``cache_dir``, on disk; returns it."""
    _FEATURES[key] = entry
    if cache_dir is not None:
        features, num_samples, rate = entry
        saved = {"features": features, "num_samples": num_samples, "audio_rate": rate}
        save_atomic(cache_dir / f"{key}.pt", lambda tmp: torch.save(saved, tmp))
    return entry

