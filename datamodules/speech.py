"""Speech data: phone-aligned (frame-labelled) and utterance-labelled corpora as log-mel / MFCC frames.

* Audio is read with ``soundfile`` (mixed down to mono) and resampled with ``torchaudio`` when its rate
  differs from ``features.sample_rate``.
* ``FeatureExtractor``: torchaudio log-mel filterbank or MFCC (+ Δ, ΔΔ), 25 ms window, 10 ms hop,
  ``center=False``: frame t covers samples [t·hop, t·hop + win) and its centre is t·hop + win/2.
  ``FeatureStream`` computes the same frames from audio pieces (streaming).
* Frame labels (``frame_phones``): the phone whose ``[start, end)`` covers the frame centre; frames no
  phone covers (gaps, a tail after the last phone) are ignored (``IGNORE``) in loss and accuracy.
* The label inventory (phones, or classes) is built from the training split and travels in the model's
  checkpoints (``SpeechMeta``) together with the feature settings and the global mean/std.
* ``on_bad_file``: an unreadable or empty audio file, a missing or malformed alignment, an alignment past
  the end of the audio, an unknown phone (or class) either stops with the file (and line) named
  (``error``) or drops the file and is counted in one warning per split (``skip``).
* Features are computed once per file and cached in memory (per process) and, with ``cache_dir``, on
  disk (written atomically); SpecAugment (torchaudio ``FrequencyMasking`` / ``TimeMasking``) acts on
  training batches only. Batches are length-bucketed and padded, with a padding mask.

Datamodules: ``PhoneCorpus`` (TIMIT layout: ``ID.wav|flac`` + ``ID.PHN`` in train/dev/test folders or a
TIMIT tree), ``SyntheticPhones`` (generated "phones" with exact alignments: the offline default) and
``UtteranceCorpus`` (Free Spoken Digit Dataset naming, or a folder per class as in Speech Commands).
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
import random
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import soundfile as sf
import torch
import torchaudio.functional as AF
import torchaudio.transforms as T
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .base import AttnLabDataModule
from .pos import BucketBatchSampler

IGNORE = -100  # target of padding and unlabelled frames (cross_entropy's default ignore_index)
AUDIO_SUFFIXES = (".wav", ".flac")
DELTA_WIDTH = 5  # frames of ComputeDeltas' regression window: ±2
OnBadFile = Literal["error", "skip"]


class SpeechDataError(ValueError):
    """A bad input file: the message starts with the file (and ``:line`` for alignments)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ------------------------------------------------------------------------------------------ features
@dataclass
class FeatureConfig:
    """What a frame is. ``kind``: log-mel filterbank or MFCC (from log-mels); ``deltas``: 0, 1 (+Δ) or 2 (+Δ+ΔΔ).

    ``normalize``: per feature, to zero mean and unit variance over each utterance ("utterance"), over the
    training set ("global": the statistics are saved with the model; streamable) or not at all.
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


@dataclass
class SpecAugment:
    """Training-only masking (Park et al. 2019): ``freq_masks`` bands of up to ``freq_width`` features and
    ``time_masks`` spans of up to ``time_width`` frames, set to 0 (the mean of normalised features)."""

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


# ------------------------------------------------------------------------------------------ audio, alignments
_RESAMPLERS: dict[tuple[int, int], T.Resample] = {}


def read_audio(path: Path, sample_rate: int) -> tuple[Tensor, int, int]:
    """(mono waveform at ``sample_rate``, the file's own rate, its number of samples at that rate)."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ... for bad files
        raise SpeechDataError("unreadable audio", f"{path}: unreadable audio ({err})") from err
    if data.size == 0:
        raise SpeechDataError("empty audio", f"{path}: empty audio (0 samples)")
    wave = torch.from_numpy(data).mean(dim=1)
    return resample(wave, rate, sample_rate), rate, data.shape[0]


def resample(wave: Tensor, rate: int, sample_rate: int) -> Tensor:
    if rate == sample_rate:
        return wave
    key = (rate, sample_rate)
    if key not in _RESAMPLERS:
        _RESAMPLERS[key] = T.Resample(rate, sample_rate)
    with torch.no_grad():
        return _RESAMPLERS[key](wave)


@dataclass
class Segment:
    """One alignment line: samples [start, end) (at the audio file's rate) carry ``phone``."""

    start: int
    end: int
    phone: str
    line: int = 0


def parse_alignment(text: str, name: str) -> list[Segment]:
    """TIMIT ``.PHN`` text: ``start_sample end_sample phone`` per line, in order, not overlapping."""
    segments: list[Segment] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 3:
            raise SpeechDataError("malformed alignment", f"{name}:{lineno}: expected 'start_sample end_sample "
                                                         f"phone', found {len(fields)} fields: {line[:80]!r}")
        try:
            start, end = int(fields[0]), int(fields[1])
        except ValueError:
            raise SpeechDataError("malformed alignment", f"{name}:{lineno}: start and end must be sample "
                                                         f"numbers, got {fields[0]!r} {fields[1]!r}") from None
        if not 0 <= start <= end:
            raise SpeechDataError("malformed alignment", f"{name}:{lineno}: need 0 <= start <= end, got "
                                                         f"{start} {end}")
        if segments and start < segments[-1].end:
            raise SpeechDataError("malformed alignment", f"{name}:{lineno}: segment starts at {start}, before "
                                                         f"the previous one ends ({segments[-1].end})")
        segments.append(Segment(start, end, fields[2], lineno))
    if not segments:
        raise SpeechDataError("malformed alignment", f"{name}: alignment has no segments")
    return segments


def read_alignment(path: Path) -> list[Segment]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpeechDataError("malformed alignment", f"{path}: unreadable alignment ({err})") from err
    return parse_alignment(text, str(path))


def read_fold_map(path: str | Path) -> dict[str, str | None]:
    """Phone folding (e.g. TIMIT 61 -> 39): ``phone target`` per line; a phone alone is dropped (its frames are
    ignored); ``#`` starts a comment. Every phone of the data must be listed (others are unknown)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data.fold_map: {path} does not exist")
    fold: dict[str, str | None] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ValueError(f"{path}:{lineno}: expected 'phone folded_phone' or 'phone' (dropped), got {raw!r}")
        if fields[0] in fold:
            raise ValueError(f"{path}:{lineno}: phone {fields[0]!r} is listed twice")
        fold[fields[0]] = fields[1] if len(fields) == 2 else None
    if not fold:
        raise ValueError(f"{path}: the fold map lists no phones")
    return fold


def frame_phones(segments: Sequence[Segment], num_frames: int, cfg: FeatureConfig, audio_rate: int,
                 offset: int = 0) -> list[int]:
    """For each frame, the index of the segment covering its centre, or -1 (no segment covers it).
    ``offset``: the frames start that many samples (at ``cfg.sample_rate``) into the audio."""
    if not segments or num_frames == 0:
        return [-1] * num_frames
    centres = (cfg.centres(num_frames) + offset) * (audio_rate / cfg.sample_rate)  # in the alignment's samples
    starts = torch.tensor([s.start for s in segments], dtype=torch.float64)
    ends = torch.tensor([s.end for s in segments], dtype=torch.float64)
    index = torch.searchsorted(starts, centres, right=True) - 1
    covered = (index >= 0) & (centres < ends[index.clamp(min=0)])
    return torch.where(covered, index, -1).tolist()


def merge_frames(labels: Sequence[str], cfg: FeatureConfig, audio_rate: int, num_samples: int
                 ) -> list[tuple[int, int, str]]:
    """Per-frame labels -> ``(start, end, label)`` segments in the audio's samples (TIMIT ``.PHN`` style).

    Frame t owns the samples nearer its centre than its neighbours'; the first segment starts at 0 and the
    last ends at the end of the audio.
    """
    segments: list[tuple[int, int, str]] = []
    scale = audio_rate / cfg.sample_rate
    for t, label in enumerate(labels):
        if segments and segments[-1][2] == label:
            continue
        boundary = 0 if t == 0 else round((t * cfg.hop_length + (cfg.win_length - cfg.hop_length) / 2) * scale)
        if segments:
            segments[-1] = (segments[-1][0], boundary, segments[-1][2])
        segments.append((boundary, num_samples, label))
    return segments


# ------------------------------------------------------------------------------------------ records
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


# ------------------------------------------------------------------------------------------ batches
class FeatureDataset(Dataset):
    """Normalised utterances; SpecAugment (training) on a copy at every access. An item with ``shifted``
    (copies on moved frame grids, see ``SpeechDataModule``) gives one of its versions at random per access."""

    def __init__(self, items: list[dict[str, Any]], augment: SpecAugment | None = None, groups: int = 1) -> None:
        self.items, self.augment, self.groups = items, augment, groups

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, dict[str, Any]]:
        item = self.items[i]
        shifted = item.get("shifted")
        if shifted:
            k = int(torch.randint(len(shifted) + 1, ()))
            if k:
                item = {**item, **shifted[k - 1]}
        if self.augment is not None and self.augment.active:
            item = {**item, "features": self.augment(item["features"], self.groups)}
        return i, item

    @property
    def lengths(self) -> list[int]:
        return [item["features"].size(0) for item in self.items]


def collate(items: list[tuple[int, dict[str, Any]]]) -> dict[str, Tensor]:
    """Pad to the longest utterance: features (B, T, F), mask (B, T) True = real frame, labels (B, T) with
    ``IGNORE`` on padding (frame level) or (B,) (utterance level), index (B,)."""
    indices, utts = zip(*items, strict=True)
    lengths = torch.tensor([u["features"].size(0) for u in utts])
    batch, length, dim = len(utts), int(lengths.max()), utts[0]["features"].size(1)
    features = torch.zeros(batch, length, dim)
    for i, u in enumerate(utts):
        features[i, :u["features"].size(0)] = u["features"]
    out = {"features": features, "mask": torch.arange(length)[None, :] < lengths[:, None],
           "index": torch.tensor(indices)}
    if "frame_labels" in utts[0]:
        labels = torch.full((batch, length), IGNORE, dtype=torch.long)
        for i, u in enumerate(utts):
            labels[i, :u["frame_labels"].numel()] = u["frame_labels"]
        out["labels"] = labels
    else:
        out["labels"] = torch.tensor([u["label"] for u in utts], dtype=torch.long)
    return out


# ------------------------------------------------------------------------------------------ feature cache
_FEATURES: dict[str, tuple[Tensor, int, int]] = {}  # per process: key -> (features, num_samples, audio rate)


def _cache_key(path: Path, cfg: FeatureConfig) -> str:
    stat = path.stat()
    raw = f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{sorted(cfg.to_dict().items())}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _save_atomic(obj: Any, path: Path) -> None:
    """torch.save via a temp file in the same directory + os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hash_fraction(key: str) -> float:
    """A stable number in [0, 1) per key (Python's hash() changes per process)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


# ------------------------------------------------------------------------------------------ datamodules
SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class SpeechDataModule(AttnLabDataModule):
    """Shared by every speech corpus: reading, features, bad-file policy, labels, normalisation, batches.

    ``setup("fit")`` builds ``self.meta`` (labels from train, global statistics) unless it holds one already;
    test/predict take it from the model's checkpoint before the dataloaders are made.
    ``predict_path``: an audio file or a folder of them (searched recursively); ``predict_output``: where the
    model writes its predictions (default: ``<input stem>.phones/`` or ``<input stem>.labels.tsv``).
    ``frame_shifts`` (frame-level training data): n > 1 keeps n versions of every training utterance whose frame
    grid starts 0, hop/n, 2·hop/n, … samples into the audio, with features and frame labels of their own, and
    each epoch draws one per utterance. Most frame errors sit on phone boundaries, where a 25 ms window mixes
    two phones; shifted grids show the model the same boundaries at new mixing proportions (n× the training
    features in memory; val/test/predict are never shifted).
    """

    level: Literal["frame", "utterance"] = "frame"

    def __init__(
        self,
        features: FeatureConfig | None = None,
        spec_augment: SpecAugment | None = None,
        fold_map: str | None = None,
        on_bad_file: OnBadFile = "error",
        frame_shifts: int = 1,
        cache_dir: str | None = None,
        predict_path: str | None = None,
        predict_output: str | None = None,
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory)
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"data.on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
        if frame_shifts < 1:
            raise ValueError(f"data.frame_shifts must be >= 1 (1 = no shifted copies), got {frame_shifts}")
        self.frame_shifts = frame_shifts
        self.features = features or FeatureConfig()
        self.spec_augment = spec_augment or SpecAugment()
        self.fold = read_fold_map(fold_map) if fold_map else None
        self.on_bad_file, self.seed = on_bad_file, seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.predict_path, self.predict_output = predict_path, predict_output
        self.extractor = FeatureExtractor(self.features)
        self.meta: SpeechMeta | None = None
        self.skipped: dict[str, Counter] = {}
        self.feature_computations = 0  # files whose features were computed (not taken from a cache)
        self._records: dict[str, list[Utterance]] = {}
        self._prepared: dict[str, list[Prepared]] = {}
        self._encoded: dict[str, tuple[SpeechMeta, FeatureDataset]] = {}
        self._first_bad: dict[str, str] = {}

    # subclasses: the utterances of "train", "val" or "test"
    def load_split(self, split: str) -> list[Utterance]:
        raise NotImplementedError

    # ------------------------------------------------------------------ bad files
    def _bad(self, split: str, error: SpeechDataError) -> None:
        if self.on_bad_file == "error":
            raise error
        self.skipped.setdefault(split, Counter())[error.kind] += 1
        self._first_bad.setdefault(split, str(error))

    def _warn_skipped(self, split: str, total: int) -> None:
        counts = self.skipped.get(split)
        if counts:
            detail = ", ".join(f"{n} {kind}" for kind, n in counts.most_common())
            rank_zero_warn(f"{type(self).__name__} {split}: skipped {sum(counts.values())} of {total} files "
                           f"(on_bad_file=skip): {detail}; first: {self._first_bad[split]}")

    # ------------------------------------------------------------------ reading
    def records(self, split: str) -> list[Utterance]:
        if split not in self._records:
            self._records[split] = self.load_predict() if split == "predict" else self.load_split(split)
        return self._records[split]

    def _features_of(self, utt: Utterance, shift: int = 0) -> tuple[Tensor, int, int]:
        """(features, num_samples, audio_rate) of one utterance, from a cache when possible. ``shift``: the
        frames start that many samples (at the features' rate) into the audio."""
        if utt.waveform is not None:
            rate = utt.sample_rate or self.features.sample_rate
            wave = resample(utt.waveform, rate, self.features.sample_rate)
            self.feature_computations += 1
            return self.extractor(wave[shift:]), utt.waveform.numel(), rate
        assert utt.audio is not None
        try:
            key = _cache_key(utt.audio, self.features) + (f"-shift{shift}" if shift else "")
        except OSError as err:
            raise SpeechDataError("unreadable audio", f"{utt.audio}: unreadable audio ({err})") from err
        if key in _FEATURES:
            return _FEATURES[key]
        disk = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        if disk is not None and disk.is_file():
            try:
                saved = torch.load(disk, weights_only=True)
                _FEATURES[key] = (saved["features"], int(saved["num_samples"]), int(saved["audio_rate"]))
                return _FEATURES[key]
            except Exception:  # a damaged cache file is recomputed and rewritten
                pass
        wave, rate, num_samples = read_audio(utt.audio, self.features.sample_rate)
        features = self.extractor(wave[shift:])
        self.feature_computations += 1
        _FEATURES[key] = (features, num_samples, rate)
        if disk is not None:
            _save_atomic({"features": features, "num_samples": num_samples, "audio_rate": rate}, disk)
        return _FEATURES[key]

    def _prepare_one(self, utt: Utterance, split: str) -> Prepared:
        features, num_samples, rate = self._features_of(utt)
        if features.size(0) == 0:
            raise SpeechDataError("empty audio", f"{utt.where}: audio too short for one frame ({num_samples} "
                                                 f"samples at {rate} Hz, a frame needs {self.features.win_ms} ms)")
        segments = None
        if self.level == "frame" and split != "predict":
            segments = utt.segments if utt.segments is not None else None
            if segments is None:
                if utt.alignment is None or not utt.alignment.is_file():
                    raise SpeechDataError("no alignment", f"{utt.where}: no alignment file (expected "
                                                          f"{utt.alignment or 'ID.PHN next to the audio'})")
                segments = read_alignment(utt.alignment)
            name = utt.alignment or utt.where
            last = segments[-1]
            if last.end > num_samples:
                raise SpeechDataError("alignment past the end of the audio",
                                      f"{name}:{last.line}: segment ends at sample {last.end}, past the end of "
                                      f"the audio ({num_samples} samples in {utt.where})")
            segments = self._folded(segments, name)
        return Prepared(utt, features, num_samples, rate, segments)

    def _folded(self, segments: list[Segment], name: Any) -> list[Segment]:
        if self.fold is None:
            return segments
        out = []
        for seg in segments:
            if seg.phone not in self.fold:
                raise SpeechDataError("unknown phone", f"{name}:{seg.line}: phone {seg.phone!r} is not in the "
                                                       f"fold map (data.fold_map)")
            target = self.fold[seg.phone]
            if target is not None:
                out.append(Segment(seg.start, seg.end, target, seg.line))
        return out

    def prepared(self, split: str) -> list[Prepared]:
        """Features and alignments of a split, bad files handled as ``on_bad_file`` says; computed once."""
        if split not in self._prepared:
            records = self.records(split)
            if not records:
                raise ValueError(f"{type(self).__name__}: the {split} split has no audio files")
            done = []
            for utt in records:
                try:
                    done.append(self._prepare_one(utt, split))
                except SpeechDataError as err:
                    self._bad(split, err)
            self._prepared[split] = done
            self._warn_skipped(split, len(records))
            if not done:
                raise ValueError(f"{type(self).__name__}: every file of the {split} split was skipped "
                                 f"({dict(self.skipped.get(split, {}))})")
        return self._prepared[split]

    # ------------------------------------------------------------------ labels, statistics
    def build_meta(self) -> SpeechMeta:
        train = self.prepared("train")
        if self.level == "frame":
            labels = sorted({s.phone for p in train for s in p.segments or ()})
        else:
            labels = sorted({p.utt.label for p in train if p.utt.label is not None})
        if not labels:
            raise ValueError(f"{type(self).__name__}: the training split carries no labels")
        mean = std = None
        frames = sum(p.features.size(0) for p in train)
        if self.features.normalize == "global":  # running sums in float64: no copy of all training frames
            total = sum(p.features.double().sum(0) for p in train)
            squares = sum(p.features.double().square().sum(0) for p in train)
            mu = total / frames
            mean = mu.float().tolist()
            std = (squares / frames - mu.square()).clamp_min(1e-10).sqrt().clamp_min(1e-5).float().tolist()
        kind = "phones" if self.level == "frame" else "classes"
        rank_zero_info(f"{type(self).__name__}: {len(train)} training utterances, {frames:,} frames of "
                       f"{self.features.dim} features; {len(labels)} {kind}")
        return SpeechMeta(labels, self.features, self.level, mean, std)

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS.get(stage or "fit", ()):
            self.prepared(split)
        if stage in (None, "fit") and self.meta is None:
            self.meta = self.build_meta()
        if self.meta is not None:
            for split in SPLITS.get(stage or "fit", ()):
                self.dataset(split)

    def _check_meta(self) -> SpeechMeta:
        if self.meta is None:
            raise RuntimeError(f"{type(self).__name__}: no label inventory to encode the data with. test/predict "
                               "take it from the model's checkpoint: pass --ckpt_path (best, last or a file) of a "
                               "model trained with `attnlab fit`")
        if self.meta.features != self.features:
            raise ValueError(f"data.features {self.features.to_dict()} differ from the features the model was "
                             f"trained on {self.meta.features.to_dict()}; use the training config's data.features")
        if self.meta.level != self.level:
            raise ValueError(f"{type(self).__name__} gives {self.level} labels but the model was trained on "
                             f"{self.meta.level} labels")
        return self.meta

    def dataset(self, split: str) -> FeatureDataset:
        meta = self._check_meta()
        cached = self._encoded.get(split)
        if cached is not None and cached[0] is meta:
            return cached[1]
        index, items = meta.index, []
        prepared = self.prepared(split)
        before = sum(self.skipped.get(split, Counter()).values())
        for p in prepared:
            try:
                items.append(self._encode(p, index, split))
            except SpeechDataError as err:
                self._bad(split, err)
        if sum(self.skipped.get(split, Counter()).values()) > before:
            self._warn_skipped(split, len(self.records(split)))
        if not items:
            raise ValueError(f"{type(self).__name__}: every file of the {split} split was skipped")
        if split == "train" and self.level == "frame" and self.frame_shifts > 1:
            self._add_shifted(items, index)
        augment = self.spec_augment if split == "train" else None
        dataset = FeatureDataset(items, augment, groups=1 + self.features.deltas)
        self._encoded[split] = (meta, dataset)
        return dataset

    def _frame_labels(self, p: Prepared, index: dict[str, int], num_frames: int, offset: int = 0) -> Tensor:
        """The phone id of every frame (``IGNORE`` where no segment covers its centre); ``offset`` as in
        ``frame_phones``."""
        assert self.meta is not None
        if p.segments is None:
            return torch.full((num_frames,), IGNORE, dtype=torch.long)
        name = p.utt.alignment or p.utt.where
        for seg in p.segments:
            if seg.phone not in index:
                raise SpeechDataError("unknown phone", f"{name}:{seg.line}: phone {seg.phone!r} does not "
                                                       f"occur in the training data (the model's phones: "
                                                       f"{' '.join(meta_preview(self.meta.labels))})")
        ids = torch.tensor([index[s.phone] for s in p.segments] + [IGNORE])
        return ids[torch.tensor(frame_phones(p.segments, num_frames, self.features, p.audio_rate, offset))]

    def _add_shifted(self, items: list[dict[str, Any]], index: dict[str, int]) -> None:
        """Give every training item ``frame_shifts - 1`` copies whose frame grid starts k·hop/frame_shifts
        samples later, with their own features and labels (see ``frame_shifts`` in the class doc)."""
        assert self.meta is not None
        shifts = [round(k * self.features.hop_length / self.frame_shifts) for k in range(1, self.frame_shifts)]
        for item in items:
            p: Prepared = item["prepared"]
            copies = []
            for shift in shifts:
                features = self._features_of(p.utt, shift)[0]
                if features.size(0):
                    copies.append({"features": self.meta.normalise(features),
                                   "frame_labels": self._frame_labels(p, index, features.size(0), shift)})
            item["shifted"] = copies

    def _encode(self, p: Prepared, index: dict[str, int], split: str) -> dict[str, Any]:
        assert self.meta is not None
        item: dict[str, Any] = {"features": self.meta.normalise(p.features), "prepared": p}
        if self.level == "frame":
            item["frame_labels"] = self._frame_labels(p, index, p.features.size(0))
        else:
            label = p.utt.label
            if split != "predict" and label not in index:
                raise SpeechDataError("unknown label", f"{p.utt.where}: class {label!r} does not occur in the "
                                                       f"training data (classes: {' '.join(self.meta.labels)})")
            item["label"] = index.get(label, IGNORE) if label is not None else IGNORE
        return item

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.dataset(split)
        sampler = BucketBatchSampler(data.lengths, self.batch_size, shuffle=shuffle, seed=self.seed)
        return self.loader(data, collate_fn=collate, batch_sampler=sampler)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    # ------------------------------------------------------------------ prediction input / output
    def load_predict(self) -> list[Utterance]:
        if self.predict_path is None:
            raise ValueError(f"{type(self).__name__}: set data.predict_path (an audio file or a folder of "
                             f"{'/'.join(AUDIO_SUFFIXES)} files) to run predict")
        path = Path(self.predict_path)
        if path.is_file():
            return [Utterance(path.stem, str(path), audio=path)]
        if not path.is_dir():
            raise ValueError(f"data.predict_path: {path} does not exist")
        return [Utterance(f.relative_to(path).with_suffix("").as_posix(), str(f), audio=f) for f in audio_files(path)]

    def output_path(self) -> Path:
        if self.predict_output:
            return Path(self.predict_output)
        stem = Path(self.predict_path or "predictions").stem
        return Path(f"{stem}.phones") if self.level == "frame" else Path(f"{stem}.labels.tsv")

    def item(self, split: str, index: int) -> Prepared:
        """The prepared utterance behind ``index`` of a batch of ``split``."""
        return self.dataset(split).items[index]["prepared"]


def meta_preview(labels: Sequence[str], n: int = 12) -> list[str]:
    return list(labels[:n]) + (["..."] if len(labels) > n else [])


def audio_files(folder: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Audio files under ``folder`` (recursively, any case of .wav/.flac), sorted; ``exclude``: name globs."""
    files = [f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
             and not any(fnmatch.fnmatch(f.name, pattern) for pattern in exclude)]
    return sorted(files)


def _child(root: Path, names: Sequence[str]) -> Path | None:
    """The sub-folder of ``root`` named one of ``names``, in any case."""
    if not root.is_dir():
        return None
    wanted = {n.lower() for n in names}
    return next((c for c in sorted(root.iterdir()) if c.is_dir() and c.name.lower() in wanted), None)


class PhoneCorpus(SpeechDataModule):
    """Phone-aligned audio in the TIMIT layout: ``ID.wav``/``ID.flac`` with ``ID.PHN`` (``start end phone``).

    ``root`` holds one folder per split, found by name in any case (``train``; ``dev``/``val``/``valid``;
    ``test``) and searched recursively, so both ``festival-kal/{train,dev,test}/ID.flac`` and a TIMIT tree
    (``TRAIN/DR1/FCJF0/SA1.WAV``) work. Without a dev folder, ``dev_fraction`` of the training speakers
    (the utterance's parent folder; each utterance when all share one folder) is held out, stably.
    ``exclude``: file-name globs to leave out (e.g. ``SA*`` for TIMIT's shared sentences).
    """

    def __init__(self, root: str = "../shared/data/speech/festival-kal", dev_fraction: float = 0.1,
                 exclude: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < dev_fraction < 1.0:
            raise ValueError(f"data.dev_fraction must be in (0, 1), got {dev_fraction}")
        self.root, self.dev_fraction, self.exclude = Path(root), dev_fraction, list(exclude or [])

    def load_split(self, split: str) -> list[Utterance]:
        if not self.root.is_dir():
            raise ValueError(f"data.root: {self.root} is not a folder (expected train/, dev/, test/ inside)")
        names = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
        folder = _child(self.root, names[split])
        if split == "val" and folder is None:
            folder = _child(self.root, names["train"])
        if folder is None:
            raise ValueError(f"data.root: {self.root} has no {'/'.join(names[split])} folder for the {split} split")
        utterances = []
        hold_out = split in ("train", "val") and _child(self.root, names["val"]) is None
        for audio in audio_files(folder, self.exclude):
            rel = audio.relative_to(folder)
            if hold_out:
                group = rel.parent.as_posix() if rel.parent != Path(".") else rel.as_posix()
                if (_hash_fraction(group) < self.dev_fraction) != (split == "val"):
                    continue
            stem = audio.with_suffix("")
            if stem.suffix.lower() in AUDIO_SUFFIXES:  # "SA1.WAV.wav" (converted TIMIT)
                stem = stem.with_suffix("")
            alignment = next((stem.with_suffix(s) for s in (".PHN", ".phn") if stem.with_suffix(s).is_file()),
                             stem.with_suffix(".PHN"))
            utterances.append(Utterance(rel.with_suffix("").as_posix(), str(audio), audio=audio, alignment=alignment))
        return utterances


class UtteranceCorpus(SpeechDataModule):
    """One label per recording.

    ``layout: fsdd`` — the Free Spoken Digit Dataset: ``{digit}_{speaker}_{index}.wav`` in ``root`` (or its
    ``recordings/``); official split: index 0-4 test, the rest train, of which ``val_fraction`` (by file) is
    held out for validation. ``layout: folders`` — a folder per class (Speech Commands): ``root/<class>/*.wav``
    with ``validation_list.txt`` / ``testing_list.txt`` when present, or ``root/{train,dev,test}/<class>/``,
    else a stable ``val_fraction`` / ``test_fraction`` split by file; folders starting with ``_`` are skipped.
    """

    level = "utterance"

    def __init__(self, root: str = "../shared/data/fsdd", layout: Literal["fsdd", "folders"] = "fsdd",
                 val_fraction: float = 0.1, test_fraction: float = 0.1, **kwargs: Any) -> None:
        if kwargs.get("features") is None:  # FSDD is 8 kHz
            kwargs["features"] = FeatureConfig(sample_rate=8000)
        super().__init__(**kwargs)
        if layout not in ("fsdd", "folders"):
            raise ValueError(f"data.layout must be 'fsdd' or 'folders', got {layout!r}")
        for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"data.{key} must be in [0, 1), got {value}")
        self.root, self.layout = Path(root), layout
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    def load_split(self, split: str) -> list[Utterance]:
        if not self.root.is_dir():
            raise ValueError(f"data.root: {self.root} is not a folder")
        return self._fsdd(split) if self.layout == "fsdd" else self._folders(split)

    def _fsdd(self, split: str) -> list[Utterance]:
        folder = self.root / "recordings" if (self.root / "recordings").is_dir() else self.root
        out = []
        for f in audio_files(folder):
            parts = f.stem.split("_")
            if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
                raise ValueError(f"{f}: FSDD files are named {{digit}}_{{speaker}}_{{index}}.wav (data.layout: "
                                 "fsdd); use data.layout: folders for a folder per class")
            index = int(parts[2])
            which = "test" if index <= 4 else ("val" if _hash_fraction(f.name) < self.val_fraction else "train")
            if which == split:
                out.append(Utterance(f.stem, str(f), audio=f, label=parts[0]))
        return out

    def _folders(self, split: str) -> list[Utterance]:
        names = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
        folder = _child(self.root, names[split])
        if _child(self.root, ("train",)) is not None:
            if folder is None:
                raise ValueError(f"data.root: {self.root} has train/ but no {'/'.join(names[split])} folder")
            return [self._labelled(f, folder) for f in self._class_files(folder)]
        lists = {"val": self.root / "validation_list.txt", "test": self.root / "testing_list.txt"}
        listed = {s: set(p.read_text().split()) for s, p in lists.items() if p.is_file()}
        out = []
        for f in self._class_files(self.root):
            rel = f.relative_to(self.root).as_posix()
            if listed:
                which = next((s for s, names_ in listed.items() if rel in names_), "train")
            else:
                r = _hash_fraction(rel)
                which = "test" if r < self.test_fraction else "val" if r < self.test_fraction + self.val_fraction \
                    else "train"
            if which == split:
                out.append(self._labelled(f, self.root))
        return out

    @staticmethod
    def _class_files(folder: Path) -> list[Path]:
        return [f for f in audio_files(folder) if not f.relative_to(folder).parts[0].startswith("_")
                and len(f.relative_to(folder).parts) >= 2]

    @staticmethod
    def _labelled(f: Path, folder: Path) -> Utterance:
        rel = f.relative_to(folder)
        return Utterance(rel.with_suffix("").as_posix(), str(f), audio=f, label=rel.parts[0])


# ------------------------------------------------------------------------------------------ synthetic phones
@dataclass
class PhoneShape:
    """A synthetic phone: a few partials (Hz, relative amplitude) plus a share of noise."""

    name: str
    partials: list[tuple[float, float]] = field(default_factory=list)
    noise: float = 0.0


def phone_shapes(num_phones: int, max_hz: float = 7000.0, seed: int = 1234) -> list[PhoneShape]:
    """``sil`` plus ``num_phones`` phones with distinct spectral shapes: 2-3 partials on a mel-spaced grid up to
    ``max_hz``, some noisy (fricative-like). Drawn from ``seed`` only, so every split shares them."""
    rng = random.Random(seed)
    top = 2595 * math.log10(1 + max_hz / 700)
    grid = [700 * (10 ** (m / 2595) - 1) for m in torch.linspace(250, top, 24).tolist()]  # mel-spaced, Hz
    shapes = [PhoneShape("sil")]
    used: set[tuple[int, ...]] = set()
    while len(shapes) < num_phones + 1:
        picks = tuple(sorted(rng.sample(range(len(grid)), rng.choice((2, 3)))))
        if picks in used or min(b - a for a, b in zip(picks, picks[1:], strict=False)) < 2:
            continue
        used.add(picks)
        partials = [(grid[i], rng.uniform(0.4, 1.0)) for i in picks]
        shapes.append(PhoneShape(f"p{len(shapes)}", partials, noise=rng.choice((0.0, 0.0, 0.3))))
    return shapes


def synthetic_utterance(rng: random.Random, shapes: Sequence[PhoneShape], sample_rate: int,
                        num_segments: tuple[int, int] = (6, 14), frames: tuple[int, int] = (3, 15),
                        noise_level: float = 0.02) -> tuple[Tensor, list[Segment]]:
    """A waveform of random phones with random durations (in 10 ms frames), starting and ending in ``sil``,
    with white noise everywhere, and its exact alignment."""
    hop = sample_rate // 100
    names = [0] + [rng.randrange(1, len(shapes)) for _ in range(rng.randint(*num_segments))] + [0]
    pieces, segments, start = [], [], 0
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    for line, k in enumerate(names, start=1):
        n = rng.randint(*frames) * hop
        t = torch.arange(n, dtype=torch.float64) / sample_rate
        shape = shapes[k]
        wave = torch.zeros(n, dtype=torch.float64)
        for freq, amp in shape.partials:
            jitter = freq * rng.uniform(0.97, 1.03)
            wave += amp * torch.sin(2 * math.pi * jitter * t + rng.uniform(0, 2 * math.pi))
        if shape.noise:
            wave += shape.noise * torch.randn(n, generator=gen, dtype=torch.float64)
        ramp = torch.clamp(torch.minimum(t, t[-1] - t) / 0.005, max=1.0)  # 5 ms fades: no clicks
        pieces.append(wave * ramp * rng.uniform(0.2, 0.6))
        segments.append(Segment(start, start + n, shape.name, line))
        start += n
    wave = torch.cat(pieces)
    wave = wave + noise_level * torch.randn(wave.numel(), generator=gen, dtype=torch.float64)
    return wave.float(), segments


class SyntheticPhones(SpeechDataModule):
    """The offline default: generated utterances of ``num_phones`` synthetic phones (+ ``sil``) with exact
    alignments. Every phone has its own spectral shape (``phone_shapes``); durations and loudness vary."""

    def __init__(self, num_train: int = 300, num_val: int = 40, num_test: int = 60, num_phones: int = 8,
                 noise_level: float = 0.02, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for key, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test),
                           ("num_phones", num_phones)):
            if value < 1:
                raise ValueError(f"data.{key} must be >= 1, got {value}")
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.shapes = phone_shapes(num_phones, max_hz=min(7000.0, 0.45 * self.features.sample_rate))
        self.noise_level = noise_level

    def load_split(self, split: str) -> list[Utterance]:
        rng = random.Random(self.seed * 10 + ("train", "val", "test").index(split))
        rate = self.features.sample_rate
        out = []
        for i in range(self.sizes[split]):
            wave, segments = synthetic_utterance(rng, self.shapes, rate, noise_level=self.noise_level)
            out.append(Utterance(f"{split}{i:05d}", f"synthetic({split}, seed={self.seed})#{i}", waveform=wave,
                                 sample_rate=rate, segments=segments))
        return out


def iter_blocks(path: Path, seconds: float) -> Iterator[tuple[Tensor, int]]:
    """(mono block, file rate) pieces of an audio file, ``seconds`` long, read lazily with soundfile."""
    info = sf.info(str(path))
    size = max(1, int(seconds * info.samplerate))
    for block in sf.blocks(str(path), blocksize=size, dtype="float32", always_2d=True):
        yield torch.from_numpy(block).mean(dim=1), info.samplerate
