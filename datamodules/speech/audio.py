"""Reading audio: ``soundfile`` (mixed down to mono), resampled with ``torchaudio`` when its rate differs from
``features.sample_rate``; whole files, lazily in blocks (streaming), and the audio files of a folder.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as T
from torch import Tensor

from .errors import SpeechDataError

AUDIO_SUFFIXES = (".wav", ".flac")


_RESAMPLERS: dict[tuple[int, int], T.Resample] = {}


def read_audio(path: Path, sample_rate: int) -> tuple[Tensor, int, int]:
    """(mono waveform at ``sample_rate``, the file's own rate, its number of samples at that rate)."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ... for bad files
        raise SpeechDataError("unreadable audio", f"{path}: unreadable audio ({err})") from err
    if data.size == 0:
        raise SpeechDataError("empty audio", f"{path}: empty audio (0 samples)")
    finite = np.isfinite(data)
    if not finite.all():  # float WAV/FLAC can hold NaN/Inf: named here, not as a NaN loss at step 0
        first = int(np.argwhere(~finite)[0][0])
        raise SpeechDataError("non-finite audio", f"{path}: {int((~finite).sum())} NaN/Inf sample(s), the first at "
                                                  f"sample {first} ({first / rate:.3f} s); expected finite samples")
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


def audio_files(folder: Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Audio files under ``folder`` (recursively, any case of .wav/.flac), sorted; ``exclude``: name globs."""
    files = [f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
             and not any(fnmatch.fnmatch(f.name, pattern) for pattern in exclude)]
    return sorted(files)


def iter_blocks(path: Path, seconds: float) -> Iterator[tuple[Tensor, int]]:
    """(mono block, file rate) pieces of an audio file, ``seconds`` long, read lazily with soundfile."""
    info = sf.info(str(path))
    size = max(1, int(seconds * info.samplerate))
    for block in sf.blocks(str(path), blocksize=size, dtype="float32", always_2d=True):
        yield torch.from_numpy(block).mean(dim=1), info.samplerate
