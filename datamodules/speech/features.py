"""What a frame is: log-mel / MFCC features (+ Δ, ΔΔ), offline and streaming.

* ``FeatureConfig``: the settings (kind, rate, window, hop, deltas, normalisation); saved with every model.
* ``FeatureExtractor``: torchaudio log-mel filterbank or MFCC (+ Δ, ΔΔ), 25 ms window, 10 ms hop,
  ``center=False``: frame t covers samples [t·hop, t·hop + win) and its centre is t·hop + win/2.
* ``FeatureStream`` computes the same frames from audio pieces (streaming), with ``WindowedStream`` for the
  deltas' context.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T
from torch import Tensor, nn

DELTA_WIDTH = 5  # frames of ComputeDeltas' regression window: ±2


@dataclass
class FeatureConfig:
    """What a frame is. ``kind``: log-mel filterbank or MFCC (from log-mels); ``deltas``: 0, 1 (+Δ) or 2 (+Δ+ΔΔ).

    ``normalize``: per feature, to zero mean and unit variance over each utterance ("utterance"), over the
    training set ("global": the statistics are saved with the model; streamable) or not at all.

    Args:
        kind: logmel (log-mel filterbank) or mfcc (cepstra of the log-mels)
        sample_rate: audio is resampled to this rate (Hz)
        n_mels: mel bands
        n_mfcc: kind mfcc: cepstral coefficients kept (1 .. n_mels)
        deltas: 0 (static only), 1 (+ delta) or 2 (+ delta + delta-delta)
        win_ms: analysis window (ms)
        hop_ms: frame shift (ms)
        normalize: utterance (per-utterance mean/variance), global (training-set statistics) or none
    """

    kind: Literal["logmel", "mfcc"] = "logmel"
    sample_rate: int = 16000
    n_mels: int = 40
    n_mfcc: int = 13
    deltas: int = 0
    win_ms: float = 25.0
    hop_ms: float = 10.0
    normalize: Literal["utterance", "global", "none"] = "utterance"

    def __post_init__(self) -> None:
        checks = [
            (self.kind in ("logmel", "mfcc"), "kind", "'logmel' or 'mfcc'"),
            (self.sample_rate > 0, "sample_rate", "> 0"),
            (self.n_mels > 0, "n_mels", "> 0"),
            (self.kind == "logmel" or 0 < self.n_mfcc <= self.n_mels, "n_mfcc", "in 1 .. n_mels"),
            (self.deltas in (0, 1, 2), "deltas", "0, 1 or 2"),
            (0 < self.hop_ms <= self.win_ms, "hop_ms", "in (0, win_ms]"),
            (self.normalize in ("utterance", "global", "none"), "normalize", "'utterance', 'global' or 'none'"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ValueError(f"data.features.{key} must be {expected}, got {getattr(self, key)!r}")
        if self.hop_length < 1:
            raise ValueError(f"data.features.hop_ms={self.hop_ms} is shorter than one sample at "
                             f"{self.sample_rate} Hz")

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def dim(self) -> int:
        """Numbers per frame."""
        return (self.n_mels if self.kind == "logmel" else self.n_mfcc) * (1 + self.deltas)

    def num_frames(self, num_samples: int) -> int:
        return 0 if num_samples < self.win_length else 1 + (num_samples - self.win_length) // self.hop_length

    def centres(self, num_frames: int) -> Tensor:
        """Sample position (at ``sample_rate``) of each frame's centre: t·hop + win/2."""
        return torch.arange(num_frames, dtype=torch.float64) * self.hop_length + self.win_length / 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeatureExtractor(nn.Module):
    """Waveform (samples,) at ``cfg.sample_rate`` -> (frames, cfg.dim) features, before normalisation."""

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mel = {"n_fft": cfg.win_length, "win_length": cfg.win_length, "hop_length": cfg.hop_length,
               "n_mels": cfg.n_mels, "center": False}
        if cfg.kind == "logmel":
            self.spectrum: nn.Module = T.MelSpectrogram(cfg.sample_rate, **mel)
        else:
            self.spectrum = T.MFCC(cfg.sample_rate, n_mfcc=cfg.n_mfcc, log_mels=True, melkwargs=mel)
        self.delta = T.ComputeDeltas(win_length=DELTA_WIDTH)

    def base(self, wave: Tensor) -> Tensor:
        """(channels, frames): log-mel (log(mel power + 1e-6)) or MFCC, without deltas."""
        spec = self.spectrum(wave.float())
        return torch.log(spec + 1e-6) if self.cfg.kind == "logmel" else spec

    @torch.no_grad()
    def forward(self, wave: Tensor) -> Tensor:
        if wave.numel() < self.cfg.win_length:
            return wave.new_zeros(0, self.cfg.dim)
        parts = [self.base(wave)]
        for _ in range(self.cfg.deltas):
            parts.append(self.delta(parts[-1]))
        return torch.cat(parts, 0).T.contiguous()


class WindowedStream:
    """Apply a per-frame op with ±``context`` frames of support (cut at the sequence ends) to a stream, exactly:
    each output is computed once its right context has arrived, from a cache of ``2·context`` frames."""

    def __init__(self, op, context: int) -> None:
        self.op, self.context = op, context
        self.cache: Tensor | None = None
        self.start = self.done = 0

    def push(self, x: Tensor, final: bool = False) -> Tensor:
        """x (channels, new frames) -> (channels, outputs now final)."""
        cache = x if self.cache is None else torch.cat([self.cache, x], dim=1)
        seen = self.start + cache.size(1)
        ready = seen if final else max(self.done, seen - self.context)
        out = cache[:, :0]
        if ready > self.done:
            lo = max(self.start, self.done - self.context)
            out = self.op(cache[:, lo - self.start:])[:, self.done - lo:ready - lo]
        keep = max(self.start, ready - self.context)
        self.cache, self.start, self.done = cache[:, keep - self.start:], keep, ready
        return out


class FeatureStream:
    """Audio pieces -> the frames ``FeatureExtractor`` gives for the whole recording, as soon as they are final.

    Keeps fewer than one window of samples and ``2·(DELTA_WIDTH // 2)`` frames per delta order; Δ frames lag
    the base frames by 2 frames per order (their right context). Normalisation is applied by the caller.
    """

    def __init__(self, extractor: FeatureExtractor) -> None:
        self.extractor, self.cfg = extractor, extractor.cfg
        self.samples = torch.zeros(0)
        context = DELTA_WIDTH // 2
        self.deltas = [WindowedStream(lambda c: AF.compute_deltas(c, DELTA_WIDTH), context)
                       for _ in range(self.cfg.deltas)]
        self.pending: list[Tensor] = [torch.zeros(self.extractor_channels, 0) for _ in range(1 + self.cfg.deltas)]

    @property
    def extractor_channels(self) -> int:
        return self.cfg.dim // (1 + self.cfg.deltas)

    @torch.no_grad()
    def push(self, wave: Tensor, final: bool = False) -> Tensor:
        """(samples,) at ``sample_rate`` -> (new frames, dim)."""
        samples = torch.cat([self.samples, wave.float().reshape(-1)])
        count = self.cfg.num_frames(samples.numel())
        if count:
            used = (count - 1) * self.cfg.hop_length + self.cfg.win_length
            parts = [self.extractor.base(samples[:used])]
            self.samples = samples[count * self.cfg.hop_length:]
        else:
            parts = [samples.new_zeros(self.extractor_channels, 0)]
            self.samples = samples
        for stream in self.deltas:
            parts.append(stream.push(parts[-1], final))
        self.pending = [torch.cat([p, new], dim=1) for p, new in zip(self.pending, parts, strict=True)]
        ready = min(p.size(1) for p in self.pending)
        out = torch.cat([p[:, :ready] for p in self.pending], 0).T.contiguous()
        self.pending = [p[:, ready:] for p in self.pending]
        return out

    def flush(self) -> Tensor:
        return self.push(torch.zeros(0), final=True)
