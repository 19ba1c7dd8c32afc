"""``--model NAME=ARGS``: a named model and the attnlab arguments that make it, for benchmarks that compare models."""

from __future__ import annotations

import shlex


def parse_models(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["GT-sep=--model.layer attention", ...]`` -> ``[("GT-sep", ["--model.layer", "attention"]), ...]``."""
    models = []
    for spec in specs:
        name, sep, args = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"--model {spec!r}: expected NAME=ARGS, e.g. 'GT-sep=--model.layer attention'")
        models.append((name, shlex.split(args)))
    return models
