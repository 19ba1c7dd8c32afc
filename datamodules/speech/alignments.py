"""Phone alignments: TIMIT ``.PHN`` files, phone folding maps, and frame labels.

* ``parse_alignment`` / ``read_alignment``: ``start_sample end_sample phone`` per line, in order, not overlapping;
  a malformed line is a ``SpeechDataError`` naming ``file:line``.
* ``frame_phones``: the phone whose ``[start, end)`` covers the frame centre; frames no phone covers (gaps, a
  tail after the last phone) are ignored (``IGNORE``) in loss and accuracy.
* ``merge_frames``: per-frame predictions back to ``.PHN``-style segments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import DataError

from ..paths import read_text_file
from .errors import SpeechDataError
from .features import FeatureConfig


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
        text = read_text_file(path)
    except OSError as err:
        raise SpeechDataError("malformed alignment", f"{path}: unreadable alignment ({err})") from err
    except DataError as err:  # invalid UTF-8: file:line named
        raise SpeechDataError("malformed alignment", str(err)) from None
    return parse_alignment(text, str(path))


def read_fold_map(path: str | Path) -> dict[str, str | None]:
    """Phone folding (e.g. TIMIT 61 -> 39): ``phone target`` per line; a phone alone is dropped (its frames are
    ignored); ``#`` starts a comment. Every phone of the data must be listed (others are unknown)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data.fold_map: {path} does not exist")
    fold: dict[str, str | None] = {}
    for lineno, raw in enumerate(read_text_file(path, "data.fold_map").splitlines(), start=1):
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


COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)


def alignment_rate_mismatch(end: int, num_samples: int, audio_rate: int) -> int | None:
    """The sample rate an alignment was evidently written for when it is not the audio's, else None.

    A ``.PHN`` file states no rate; its samples are taken at the audio's. An alignment that covers well under
    90 % of the audio but, read at another common rate, ends within the last 3 % of it (TIMIT 16 kHz labels next
    to 22.05 kHz audio end at 73 %) would put every label at the wrong frames."""
    if num_samples <= 0 or end >= 0.9 * num_samples:
        return None
    for rate in COMMON_RATES:
        if rate != audio_rate and 0.97 * num_samples <= end * audio_rate / rate <= num_samples:
            return rate
    return None


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
