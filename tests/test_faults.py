"""Fault injection: hostile but fair inputs for the core, every app, the CLI and checkpoints (issue #18).

Each test plays one fault and checks what the user gets: one ``core.errors.UserError`` naming the file, line or
config key (the CLI prints it as one line), or the fault handled correctly, and no half-written file. The fast
part runs in ``make test``; tests that start a real ``attnlab`` process are marked ``faults_slow`` (CI skips
them: ``-m "not faults_slow"``). ``FAULTS`` counts the faults per app (see ``test_fault_counts``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import AttentionConfig, Encoder, EncoderConfig, MultiHeadSelfAttention, Truncated
from core.errors import CheckpointError, ConfigError, DataError, UserError

ROOT = Path(__file__).resolve().parents[1]
FAULTS: dict[str, int] = {}


def fault(app: str):
    """Count a test as one fault of ``app`` (core, cli, checkpoints, graph, vision, speech, pos, sequence, lra)."""
    def mark(fn):
        FAULTS[app] = FAULTS.get(app, 0) + 1
        return fn
    return mark


# ------------------------------------------------------------------------------------------------------- core
@fault("core")
@pytest.mark.parametrize("options", [{"position": "relative"}, {"score": "additive"}, {}])
def test_length_zero_sequence_with_relative_or_additive_scores(options):
    """#10: a length-0 sequence gave IndexError from amax() in core/scores.py."""
    attn = MultiHeadSelfAttention(16, AttentionConfig(num_heads=2, **options))
    out, weights = attn(torch.randn(2, 0, 16), return_weights=True)
    assert out.shape == (2, 0, 16) and weights.numel() == 0


@fault("core")
@pytest.mark.parametrize("left, right", [(1.5, 0), (2, 0.5), (-1, 3), ("3", 1)])
def test_fractional_truncated_window_is_refused(left, right):
    """Truncated(left=1.5) silently became 1."""
    with pytest.raises(ConfigError, match="whole number"):
        Truncated(left, right)
    assert Truncated(3.0, 2).left == 3  # a whole float is fine


@fault("core")
def test_inf_in_one_input_element_is_named():
    """inf in one element turned the whole sequence NaN unannounced."""
    encoder = Encoder(EncoderConfig(dim=16, depth=1, num_heads=2))
    x = torch.randn(2, 5, 16)
    x[1, 3, 7] = math.inf
    with pytest.raises(DataError, match=r"NaN/Inf.*\(1, 3, 7\)"):
        encoder(x)
    x[1, 3, 7] = 0.0
    assert torch.isfinite(encoder(x)).all()


@fault("core")
def test_user_error_is_one_line_and_a_value_error():
    err = DataError("bad\nrow", where="a.txt:3", expected="two\ncolumns", fix="Fix it.")
    assert isinstance(err, ValueError) and "\n" not in str(err)
    assert str(err) == "a.txt:3: bad row; expected two columns. Fix it."
    assert issubclass(CheckpointError, UserError)
