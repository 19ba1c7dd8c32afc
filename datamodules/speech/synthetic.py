"""Synthetic phones: generated utterances with exact alignments, the offline default (``SyntheticPhones``).

Every phone has its own spectral shape (``phone_shapes``): a few partials on a mel-spaced grid, some noisy;
``synthetic_utterance`` strings random phones of random durations together, starting and ending in ``sil``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .alignments import Segment
from .datamodule import SpeechDataModule
from .records import Utterance


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
    """The offline default: generated utterances of synthetic phones with exact alignments.

    ``num_phones`` phones (+ ``sil``), each with its own spectral shape (``phone_shapes``); durations and
    loudness vary.

    Args:
        num_train: generated training utterances
        num_val: generated validation utterances
        num_test: generated test utterances
        num_phones: synthetic phones besides sil
        noise_level: standard deviation of the white noise added to each waveform
    """

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
