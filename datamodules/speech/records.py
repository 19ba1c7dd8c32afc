"""What the speech datamodules pass around: utterances to read, their prepared features, and ``SpeechMeta``.

The label inventory (phones, or classes) is built from the training split and travels in the model's
checkpoints (``SpeechMeta``) together with the feature settings and the global mean/std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from .alignments import Segment
from .features import FeatureConfig


@dataclass
class Utterance:
    """One recording to read: a file (with its alignment, or its class) or a generated waveform."""

    id: str
    where: str
    audio: Path | None = None
    alignment: Path | None = None
    label: str | None = None
    waveform: Tensor | None = None  # generated data: at ``sample_rate``
    sample_rate: int | None = None
    segments: list[Segment] | None = None  # generated data: exact alignment


@dataclass
class Prepared:
    """An utterance's features (not yet normalised) and its alignment (already folded)."""

    utt: Utterance
    features: Tensor
    num_samples: int
    audio_rate: int
    segments: list[Segment] | None = None


@dataclass
class SpeechMeta:
    """What a model needs besides its weights to read new audio: labels, feature settings, global statistics."""

    labels: list[str]
    features: FeatureConfig
    level: Literal["frame", "utterance"] = "frame"
    mean: list[float] | None = None
    std: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings: safe for ``torch.load(weights_only=True)`` inside a checkpoint."""
        return {"labels": list(self.labels), "features": self.features.to_dict(), "level": self.level,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpeechMeta:
        return cls(list(d["labels"]), FeatureConfig(**d["features"]), d["level"], d.get("mean"), d.get("std"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpeechMeta) and self.to_dict() == other.to_dict()

    @property
    def index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def normalise(self, features: Tensor) -> Tensor:
        """(frames, dim) -> normalised as ``features.normalize`` says."""
        how = self.features.normalize
        if how == "utterance":
            if features.size(0) == 0:
                return features
            return (features - features.mean(0)) / features.std(0, unbiased=False).clamp_min(1e-5)
        if how == "global":
            if self.mean is None or self.std is None:
                raise ValueError("features.normalize='global' needs the training statistics (mean/std), "
                                 "which this SpeechMeta does not hold")
            return (features - torch.tensor(self.mean)) / torch.tensor(self.std)
        return features


def meta_preview(labels: Sequence[str], n: int = 12) -> list[str]:
    return list(labels[:n]) + (["..."] if len(labels) > n else [])
