"""Streaming an ``Encoder`` under ``Truncated(left, right)``: chunk by chunk, equal to one offline pass.

Why it can be exact: with a truncated pattern, block l's output at frame p depends only on block l's
inputs p-left .. p+right (cut at the true sequence ends), and everything else in a block is per frame.
So each block keeps a small cache of its own *input* frames and emits an output as soon as that
output's right context has arrived:

* the cache of block l holds its inputs from ``done_l - left`` on (``done_l`` = outputs emitted so far):
  the ``left`` frames of context the next outputs attend to, plus the frames still waiting for their
  ``right`` lookahead (at most ``right``, plus the newest chunk while it is processed);
* per chunk, block l runs on its cache + the new frames (from block l-1) and keeps the outputs whose
  window lies inside what it has seen; they are block l+1's new frames;
* at the end of the stream (``flush``) the true end of the sequence cuts every window, as offline.

A naive alternative recomputes every chunk with ``depth·left`` frames of input history and
``depth·right`` of lookahead; the per-block cache needs the same lookahead (``depth·right`` frames of
latency) but only ``depth·(left+right)`` cached vectors and no recomputation beyond each block's own
window. Memory is O(depth · (left + right + chunk) · dim), whatever the length of the stream.
Positions must be relative ("relative" or "rotary", or none), since every block sees its frames at
positions relative to its cache; rotary angles are then computed from smaller numbers than offline,
so with rotary the two agree to float rounding of the angles (exact in exact arithmetic).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .encoder import Encoder
from .patterns import Truncated


class StreamingEncoder:
    """Feed ``push(chunk)`` (B, C, dim) pieces of a stream, then ``flush()``; concatenated outputs equal
    ``encoder(whole, pattern)``. The encoder must be in eval mode (dropout would make the passes differ)."""

    def __init__(self, encoder: Encoder, pattern: Truncated) -> None:
        if not isinstance(pattern, Truncated):
            raise ValueError(f"StreamingEncoder needs a Truncated(left, right) pattern (bounded context), "
                             f"got {pattern!r}")
        if not isinstance(encoder, Encoder):
            raise ValueError(f"StreamingEncoder wraps a core.Encoder, got {type(encoder).__name__}")
        self.encoder, self.pattern = encoder, pattern
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        depth = len(self.encoder.blocks)
        self.cache: list[Tensor | None] = [None] * depth  # block l's inputs from index start[l] on
        self.start = [0] * depth
        self.done = [0] * depth  # outputs block l has emitted
        self.finished = False

    @property
    def latency(self) -> int:
        """Frames of lookahead before an output is final: ``depth · right``."""
        return len(self.encoder.blocks) * self.pattern.right

    def cached_frames(self) -> int:
        """Vectors held between calls (all blocks together): at most ``depth · (left + right)``."""
        return sum(0 if c is None else c.size(1) for c in self.cache)

    @torch.no_grad()
    def push(self, chunk: Tensor, final: bool = False) -> Tensor:
        """The next encoder outputs (B, n, dim) that ``chunk`` makes final (n may be 0); ``final`` ends the stream."""
        if self.finished:
            raise ValueError("StreamingEncoder: the stream was flushed; call reset() to start a new one")
        if self.encoder.training:
            raise ValueError("StreamingEncoder: put the encoder in eval mode (dropout would differ from offline)")
        if chunk.dim() != 3:
            raise ValueError(f"StreamingEncoder.push expects a (batch, frames, dim) chunk, got {tuple(chunk.shape)}")
        left, right = self.pattern.left, self.pattern.right
        x = chunk
        for i, block in enumerate(self.encoder.blocks):
            cache = x if self.cache[i] is None else torch.cat([self.cache[i], x], dim=1)
            start, done = self.start[i], self.done[i]
            seen = start + cache.size(1)  # inputs of block i received so far
            ready = seen if final else max(done, seen - right)  # outputs whose right context has arrived
            if ready > done:
                lo = max(start, done - left)  # == max(0, done - left): older frames were dropped only if unused
                out, _ = block(cache[:, lo - start:], self.pattern)
                x = out[:, done - lo:ready - lo]
            else:
                x = cache[:, :0]
            keep = max(start, ready - left)
            self.cache[i], self.start[i], self.done[i] = cache[:, keep - start:], keep, ready
        if final:
            self.finished = True
        return self.encoder.norm(x)

    def flush(self) -> Tensor:
        """The remaining outputs: the end of the stream is the end of the sequence."""
        first = self.cache[0]
        if first is None:  # nothing was pushed
            self.finished = True
            return torch.empty(1, 0, self.encoder.norm.normalized_shape[0])
        return self.push(first[:, :0], final=True)
