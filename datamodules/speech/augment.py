"""SpecAugment (torchaudio ``FrequencyMasking`` / ``TimeMasking``): acts on training batches only."""

from __future__ import annotations

from dataclasses import dataclass

import torchaudio.transforms as T
from torch import Tensor


@dataclass
class SpecAugment:
    """Training-only masking (Park et al. 2019): ``freq_masks`` bands of up to ``freq_width`` features and
    ``time_masks`` spans of up to ``time_width`` frames, set to 0 (the mean of normalised features).

    Args:
        freq_masks: feature bands masked per training utterance (0: off)
        freq_width: widest band (features)
        time_masks: time spans masked per training utterance (0: off)
        time_width: longest span (frames)
    """

    freq_masks: int = 0
    freq_width: int = 8
    time_masks: int = 0
    time_width: int = 10

    def __post_init__(self) -> None:
        for key in ("freq_masks", "freq_width", "time_masks", "time_width"):
            if getattr(self, key) < 0:
                raise ValueError(f"data.spec_augment.{key} must be >= 0, got {getattr(self, key)}")
        self._freq = T.FrequencyMasking(self.freq_width) if self.freq_masks and self.freq_width else None
        self._time = T.TimeMasking(self.time_width) if self.time_masks and self.time_width else None

    @property
    def active(self) -> bool:
        return self._freq is not None or self._time is not None

    def __call__(self, features: Tensor, groups: int = 1) -> Tensor:
        """(frames, features) -> a masked copy. ``groups``: the features are that many equal blocks (static, Δ,
        ΔΔ) of the same bands; a frequency mask hides the same bands in every block."""
        x = features.T.reshape(groups, -1, features.size(0))  # torchaudio's (channel, freq, time)
        for _ in range(self.freq_masks if self._freq is not None else 0):
            x = self._freq(x)  # iid_masks=False: one mask for all channels
        for _ in range(self.time_masks if self._time is not None else 0):
            x = self._time(x)
        return x.reshape(features.size(1), -1).T.contiguous()
